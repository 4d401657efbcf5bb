"""Input formats: each module turns one raw record of its format into alerts, rejections and skips.

Every parser has the same shape: `parse(payload: bytes, context: ParseContext) -> Parsed`.
It raises `Rejected` (field, reason) when the record as a whole cannot be read, and reports
items that fail on their own inside the `Parsed` it returns. Parsers are pure: no I/O, no
Kafka, no clock other than `context.now`.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.parsers import alert_avro, alert_json, cef, csv_feed, intelmq, misp, stix2, suricata_eve
from pipeline.parsers.base import ParseContext, Parsed, Skip

Parser = Callable[[bytes, ParseContext], Parsed]

PARSERS: dict[str, Parser] = {
    "alert-json": alert_json.parse,
    "alert-avro": alert_avro.parse,
    "suricata-eve": suricata_eve.parse,
    "stix2": stix2.parse,
    "misp": misp.parse,
    "csv": csv_feed.parse,
    "intelmq": intelmq.parse,
    "cef": cef.parse,
}


def sniff_format(payload: bytes) -> str | None:
    """Guess the format of a record that arrived without a `format` header (native formats only)."""
    if payload[:2] == b"\xc3\x01":
        return "alert-avro"
    if payload.lstrip()[:1] == b"{":
        return "alert-json"
    return None


__all__ = ["PARSERS", "ParseContext", "Parsed", "Parser", "Skip", "sniff_format"]
