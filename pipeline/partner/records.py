"""How a partner's file becomes Kafka records, and which format a file is in.

Line formats (Suricata EVE, IntelMQ, CEF, CSV, alert JSON lines) send one record per line, so
that a bad line is dead-lettered alone and the normaliser's location (`line 1` of its record)
maps back to the file's line. A CSV row whose quoted cell spans lines is one record, from the
line it starts on. A STIX bundle is one record; a MISP export holding a list of events sends
each event as its own record. Blank lines are not sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

LINE_FORMATS = frozenset({"suricata-eve", "intelmq", "cef", "csv", "alert-json"})


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One record to send: its bytes and where it came from in the file."""

    value: bytes
    line: int | None  # first line in the file (line formats), else None
    index: int  # 1-based position among the file's records


class UsageError(ValueError):
    """A file or an option that cannot be used as given; the message says what to do."""


def split_records(data: bytes, fmt: str) -> Iterator[FileRecord]:
    """The records a file of format `fmt` is sent as."""
    if fmt in LINE_FORMATS and not (fmt == "alert-json" and data.lstrip()[:1] == b"["):
        rows = _csv_rows(data) if fmt == "csv" else enumerate(data.splitlines(), start=1)
        index = 0
        for number, line in rows:
            if line.strip():
                index += 1
                yield FileRecord(line, number, index)
        return
    if fmt in ("alert-json", "misp") and data.lstrip()[:1] == b"[":
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"the file is not a JSON array: {exc}") from None
        for index, item in enumerate(items, start=1):
            yield FileRecord(orjson.dumps(item), None, index)
        return
    if data.strip():
        yield FileRecord(data, None, 1)


def _csv_rows(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The rows of a CSV file, each with the line it starts on and without its line break.

    A line break after an odd number of quotes in the row so far is inside a quoted cell
    (RFC 4180 doubles a quote inside a cell, which keeps the count even), so the row goes on. A
    quote left open at the end runs to the end of the file: the normaliser then names that row.
    """
    row: list[bytes] = []
    start = quotes = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not row:
            start = number
        row.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield start, _without_break(b"".join(row))
            row, quotes = [], 0
    if row:
        yield start, _without_break(b"".join(row))


def _without_break(line: bytes) -> bytes:
    for end in (b"\r\n", b"\n", b"\r"):
        if line.endswith(end):
            return line[: -len(end)]
    return line


def sniff_file_format(data: bytes) -> str | None:
    """Guess a file's format from its first line; None when nothing fits."""
    if data[:2] == b"\xc3\x01":
        return "alert-avro"
    head = data.lstrip()[:4096]
    first = head.split(b"\n", 1)[0]
    if b"CEF:" in first:
        return "cef"
    if head[:1] in (b"{", b"["):
        if b'"type"' in head and (b'"bundle"' in head or b'"spec_version"' in head):
            return "stix2"
        if b'"Event"' in head or b'"Attribute"' in head:
            return "misp"
        if b'"event_type"' in first:
            return "suricata-eve"
        if b'"classification.type"' in first or b'"classification.taxonomy"' in first:
            return "intelmq"
        return "alert-json"
    return None
