"""Input formats: each module turns one raw record of its format into alerts or a rejection.

Every parser has the same shape: `parse(payload: bytes, context: ParseContext) -> list[Alert]`,
raising `Rejected` (field, reason) for input it cannot trust. Parsers are pure: no I/O, no
Kafka, no clock other than `context.now`.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.alert import Alert
from pipeline.parsers import alert_avro, alert_json
from pipeline.parsers.base import ParseContext

Parser = Callable[[bytes, ParseContext], list[Alert]]

PARSERS: dict[str, Parser] = {
    "alert-json": alert_json.parse,
    "alert-avro": alert_avro.parse,
}


def sniff_format(payload: bytes) -> str | None:
    """Guess the format of a record that arrived without a `format` header."""
    if payload[:2] == b"\xc3\x01":
        return "alert-avro"
    if payload.lstrip()[:1] == b"{":
        return "alert-json"
    return None


__all__ = ["PARSERS", "ParseContext", "Parser", "sniff_format"]
