"""Normalisation: one raw record from a partner becomes alerts, located rejections and skips.

Pure: the caller passes the record, the feed registry and the limits; nothing here touches
Kafka. The record's `feed` header must name a feed declared in the registry, and its
`producer` header an identity that feed allows; the feed's declared format decides the
parser. Every rejection carries the field, the reason, the feed and (for records of many
items) where in the record, so the dead-letter record says exactly what a partner must fix.
A parser that fails unexpectedly costs that record only: it is rejected, never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pipeline.dedupe import fingerprint
from pipeline.feeds import FeedRegistry
from pipeline.parsers import PARSERS, ParseContext, Parsed
from pipeline.rejected import Rejected

log = logging.getLogger(__name__)

FORMAT_HEADER = "format"
FEED_HEADER = "feed"
PRODUCER_HEADER = "producer"
#: Formats a native-format feed may switch between record by record.
NATIVE = frozenset({"alert-json", "alert-avro"})


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a partner may send."""

    max_message_bytes: int


def header(headers: Mapping[str, bytes], name: str) -> str:
    value = headers.get(name)
    return value.decode("utf-8", "replace") if value else ""


def normalise(
    payload: bytes | None,
    headers: Mapping[str, bytes],
    feeds: FeedRegistry,
    limits: Limits,
    now: datetime,
    writer: str | None = None,
) -> Parsed:
    """Parse one raw record into fingerprinted alerts; every rejection names field and feed.

    `writer` is the producer the broker authenticated, when the record came from a partner's
    own raw topic (which only that partner may write): it is the record's producer whatever
    the header says, and a header naming someone else is refused. Without it the `producer`
    header is taken at its word (the shared raw topic of an open broker).
    """
    feed = header(headers, FEED_HEADER)
    try:
        if writer is not None:
            headers = _bind_writer(headers, writer)
        parsed = _parse(payload, headers, feed, feeds, limits, now)
    except Rejected as rejected:
        parsed = Parsed(rejected=[rejected])
    except Exception as exc:
        log.exception("The parser failed on a record of feed %s", feed or "unknown")
        parsed = Parsed(
            rejected=[Rejected("payload", f"the parser failed on this record ({type(exc).__name__})")]
        )
    parsed.rejected = [r.with_feed(feed or "unknown") for r in parsed.rejected]
    for alert in parsed.alerts:
        alert["fingerprint"] = fingerprint(alert)
    return parsed


def _bind_writer(headers: Mapping[str, bytes], writer: str) -> Mapping[str, bytes]:
    claimed = header(headers, PRODUCER_HEADER)
    if claimed and claimed != writer:
        raise Rejected(
            PRODUCER_HEADER, f"the record claims producer {claimed[:64]!r} but was written by {writer!r}"
        )
    return {**headers, PRODUCER_HEADER: writer.encode()}


def _parse(
    payload: bytes | None,
    headers: Mapping[str, bytes],
    feed: str,
    feeds: FeedRegistry,
    limits: Limits,
    now: datetime,
) -> Parsed:
    if not feed:
        raise Rejected(FEED_HEADER, "the record has no feed header")
    spec = feeds.get(feed)
    if spec is None:
        raise Rejected(FEED_HEADER, f"feed {feed[:130]!r} is not declared in the feed registry")
    identity = header(headers, PRODUCER_HEADER)
    if not spec.allows(identity):
        raise Rejected(PRODUCER_HEADER, f"producer {identity[:130]!r} may not write feed {feed}")
    if payload is None:
        raise Rejected("payload", "empty record (no value)")
    if len(payload) > limits.max_message_bytes:
        raise Rejected("payload", f"{len(payload)} bytes exceeds the limit of {limits.max_message_bytes}")
    fmt = header(headers, FORMAT_HEADER) or spec.format
    if fmt != spec.format and not (fmt in NATIVE and spec.format in NATIVE):
        raise Rejected(
            FORMAT_HEADER, f"the record says {fmt[:32]!r} but feed {feed} is declared as {spec.format}"
        )
    parser = PARSERS.get(fmt)
    if parser is None:
        raise Rejected(FORMAT_HEADER, f"unsupported format {fmt[:32]!r}; known: {', '.join(PARSERS)}")
    return parser(payload, ParseContext.of(spec, now))
