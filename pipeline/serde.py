"""Encodings of the alert: Avro single-object encoding on the pipeline's topics, JSON for members.

Single-object encoding (Avro 1.8+ specification): the two marker bytes C3 01, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the
Avro binary body. A reader keeps every schema version it knows by fingerprint, so records
written with an older version stay readable; an unknown fingerprint is a `SerdeError` that says
so, never a garbled alert.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.alert import Alert, load_schema

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


class SerdeError(ValueError):
    """Bytes that are not a readable alert in the expected encoding."""


class AvroCodec:
    """Reads and writes alerts in Avro single-object encoding with one writer schema."""

    def __init__(self, schema: dict[str, Any], readable: Iterable[dict[str, Any]] = ()) -> None:
        self._schema = parse_schema(schema)
        self._optional_records = _optional_records(self._schema)
        self.fingerprint = _fingerprint(self._schema)
        self._header = MAGIC + self.fingerprint
        self._readers = {self.fingerprint: self._schema}
        for older in readable:
            parsed = parse_schema(older)
            self._readers[_fingerprint(parsed)] = parsed

    def encode(self, alert: Alert) -> bytes:
        """Encode one alert; raises `SerdeError` naming the problem if it breaks the schema."""
        out = io.BytesIO()
        out.write(self._header)
        # An optional record written as (record name, value) tells fastavro the union's branch;
        # otherwise it validates the whole record against each branch to find it.
        datum = dict(alert)
        for field, name in self._optional_records:
            if datum.get(field) is not None:
                datum[field] = (name, datum[field])
        try:
            schemaless_writer(out, self._schema, datum)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise SerdeError(f"alert does not fit the schema: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> Alert:
        """Decode one record, resolving an older writer schema to the current one."""
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise SerdeError("not Avro single-object encoding (missing C3 01 marker)")
        writer = self._readers.get(bytes(data[2:HEADER_SIZE]))
        if writer is None:
            raise SerdeError(
                f"unknown schema fingerprint {bytes(data[2:HEADER_SIZE]).hex()}; "
                f"this reader knows {', '.join(f.hex() for f in self._readers)}"
            )
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            # Resolution only for an older writer: the current one needs none (and is faster).
            alert = schemaless_reader(body, writer, None if writer is self._schema else self._schema)
        except (EOFError, ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
            raise SerdeError(f"corrupt Avro body: {exc}") from exc
        if body.tell() != len(data):
            raise SerdeError(f"{len(data) - body.tell()} trailing bytes after the Avro body")
        return alert  # type: ignore[return-value]

    def decode_many(self, records: Iterable[bytes]) -> list[Alert]:
        """Decode a batch; raises on the first bad record (pipeline topics carry only valid ones)."""
        return [self.decode(record) for record in records]


def _optional_records(parsed: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(field, record name) of each top-level field typed `["null", <record>]`."""
    records = {
        branch["name"]
        for field in parsed["fields"]
        for branch in (field["type"] if isinstance(field["type"], list) else ())
        if isinstance(branch, dict) and branch.get("type") == "record"
    }
    found = []
    for field in parsed["fields"]:
        kind = field["type"]
        if not (isinstance(kind, list) and len(kind) == 2 and "null" in kind):
            continue
        branch = kind[0] if kind[1] == "null" else kind[1]
        if isinstance(branch, dict) and branch.get("type") == "record":
            found.append((field["name"], branch["name"]))
        elif isinstance(branch, str) and branch in records:
            found.append((field["name"], branch))
    return tuple(found)


def _fingerprint(parsed: dict[str, Any]) -> bytes:
    canonical = to_parsing_canonical_form(parsed)
    # fastavro returns the CRC-64-AVRO value already in the little-endian byte order of the wire.
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@functools.cache
def alert_codec() -> AvroCodec:
    """The codec for the current alert schema (built once per process)."""
    return AvroCodec(load_schema())


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(alert: Alert) -> bytes:
    """Member-facing JSON: RFC 3339 times with an explicit UTC offset, bytes as base64."""
    return orjson.dumps(alert, default=_json_default, option=orjson.OPT_UTC_Z)


def from_json(data: bytes | str) -> Any:
    """Parse JSON bytes; raises `SerdeError` with the position of the first error."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SerdeError(f"not valid JSON: {exc}") from exc
