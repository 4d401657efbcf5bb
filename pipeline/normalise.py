"""Normalisation: one raw record from a partner becomes alerts, or one rejection.

Pure: the caller passes the record and the limits; nothing here touches Kafka. A rejection
carries the field, the reason and the feed, so the dead-letter record can say exactly what a
partner must fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pipeline.alert import Alert, Rejected
from pipeline.dedupe import fingerprint
from pipeline.parsers import PARSERS, ParseContext, sniff_format

FORMAT_HEADER = "format"
FEED_HEADER = "feed"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a partner may send."""

    max_message_bytes: int
    default_tlp: str = "AMBER"


def header(headers: Mapping[str, bytes], name: str) -> str:
    value = headers.get(name)
    return value.decode("utf-8", "replace") if value else ""


def normalise(
    payload: bytes | None, headers: Mapping[str, bytes], limits: Limits, now: datetime
) -> list[Alert]:
    """Parse one raw record into fingerprinted alerts; raises `Rejected` naming field and feed."""
    feed = header(headers, FEED_HEADER)
    try:
        if payload is None:
            raise Rejected("payload", "empty record (no value)")
        if len(payload) > limits.max_message_bytes:
            raise Rejected("payload", f"{len(payload)} bytes exceeds the limit of {limits.max_message_bytes}")
        fmt = header(headers, FORMAT_HEADER) or sniff_format(payload)
        if fmt is None:
            raise Rejected("format", "no format header and the payload is neither JSON nor Avro")
        parser = PARSERS.get(fmt)
        if parser is None:
            raise Rejected("format", f"unsupported format {fmt[:32]!r}; known: {', '.join(PARSERS)}")
        alerts = parser(payload, ParseContext(feed=feed, now=now, default_tlp=limits.default_tlp))
    except Rejected as rejected:
        raise rejected.with_feed(feed or "unknown") from None
    for alert in alerts:
        alert["fingerprint"] = fingerprint(alert)
    return alerts
