"""CSV feeds: each row becomes one alert through the feed's declared column mapping.

The mapping lives in `feeds.yaml` (see `pipeline.feeds.CsvMapping`): the columns in order,
which alert field each column fills, constants (typically the RSIT class and type), and which
columns are indicators. A payload may hold one row or many; a repeated header row and comment
lines are skipped and counted, a row with the wrong number of columns is rejected by line.
A quoted cell may span lines (RFC 4180): it keeps its line breaks, and its row is named by
the line it starts on. Only CR, LF and CRLF end a line, so other Unicode line separators
inside a cell stay part of it.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from pipeline.alert import Alert
from pipeline.feeds import CsvMapping
from pipeline.observables import digits
from pipeline.parsers.base import ParseContext, Parsed, Skip, build, each, integer, text_of
from pipeline.rejected import Rejected
from pipeline.taxonomy import classify

_INTEGER_TARGETS = frozenset(
    {"confidence", "source.port", "destination.port", "source.asn", "destination.asn"}
)


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """Every row of the payload, mapped by the feed's declaration."""
    mapping = context.spec.csv if context.spec is not None else None
    if mapping is None:
        raise Rejected("format", "csv needs a feed whose declaration has a csv mapping")
    body = text_of(payload)
    try:
        rows = _rows(body, mapping.delimiter)
    except csv.Error as exc:
        raise Rejected("payload", f"not CSV: {exc}") from None
    return each(((f"line {n}", row) for n, row in rows if row), lambda row: [_row(row, mapping, context)])


def _rows(body: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Each row with the line it starts on (a quoted cell may run over several lines)."""
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    rows, line = [], 1
    for row in reader:
        rows.append((line, row))
        line = reader.line_num + 1
    return rows


def _row(row: list[str], mapping: CsvMapping, context: ParseContext) -> Alert:
    if mapping.comment and row[0].lstrip().startswith(mapping.comment):
        raise Skip("csv comment")
    if tuple(cell.strip() for cell in row) == mapping.columns:
        raise Skip("csv header")
    if len(row) != len(mapping.columns):
        raise Rejected("row", f"expected {len(mapping.columns)} columns, got {len(row)}")
    cells = {column: cell.strip() for column, cell in zip(mapping.columns, row, strict=True)}
    data: dict[str, Any] = {}
    for target, value in mapping.constants.items():
        _put(data, target, value)
    for target, column in mapping.fields.items():
        value = cells[column]
        if value == "":
            continue
        if target in _INTEGER_TARGETS:
            _put(data, target, integer(value.upper().removeprefix("AS"), column))
        elif target in ("time_observation", "time_source"):
            _put(data, target, _time(value, column, mapping.time_format))
        elif target == "references":
            data.setdefault("references", []).append(value)
        else:
            _put(data, target, value)
    if "taxonomy" in data or "type" in data:
        data["taxonomy"], data["type"] = classify(data.get("taxonomy"), data.get("type"))
    data["indicators"] = [
        {"type": kind, "value": cells[column]} for column, kind in mapping.indicators.items() if cells[column]
    ]
    if "time_observation" not in data:
        data["time_observation"] = context.now
    return build(data, context, mapping.delimiter.join(row).encode())


def _put(data: dict[str, Any], target: str, value: Any) -> None:
    head, _, rest = target.partition(".")
    if rest:
        data.setdefault(head, {})[rest] = value
    else:
        data[head] = value


def _time(value: str, column: str, time_format: str | None) -> Any:
    if time_format is None:
        if digits(value):
            return int(value)
        try:
            moment = datetime.fromisoformat(value.removesuffix("Z").removesuffix("z"))
        except ValueError:
            raise Rejected(column, f"not an RFC 3339 time or epoch seconds: {value[:40]!r}") from None
    else:
        try:
            moment = datetime.strptime(value, time_format)
        except ValueError:
            raise Rejected(column, f"{value[:40]!r} does not match the time format {time_format!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
