"""How a partner's file becomes Kafka records, and which format a file is in.

Line formats (Suricata EVE, IntelMQ, CEF, CSV, alert JSON lines) send one record per line, so
that a bad line is dead-lettered alone and the normaliser's location (`line 1` of its record)
maps back to the file's line. A STIX bundle is one record; a MISP export holding a list of
events sends each event as its own record. Blank lines are not sent.
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
        index = 0
        for number, line in enumerate(data.splitlines(), start=1):
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
