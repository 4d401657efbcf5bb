"""The two stages as pure functions over a batch of records, shared by both runtimes.

`normalise_batch` turns raw partner records into alert records and dead letters;
`dispatch_batch` dedupes, enriches and routes normalised alerts. Neither writes anything or
touches a metric: they return what to write and what to count, and the caller (a Faust agent
at least once, or a transactional loop exactly once) writes it and counts it when it is safe.
"""

from __future__ import annotations

import collections
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from connectors.core import Delivery
from pipeline.alert import Alert, load_schema
from pipeline.asn import AsnDataset
from pipeline.dedupe import Seen, Verdict, stamp
from pipeline.enrich import enrich
from pipeline.feeds import FeedRegistry
from pipeline.metrics import Metrics, observe_many
from pipeline.normalise import FEED_HEADER, Limits, normalise
from pipeline.producer import Record
from pipeline.rejected import Rejected
from pipeline.routing import RoutingIndex, receivers
from pipeline.rules import Effects, EnrichmentRules
from pipeline.serde import AvroCodec
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER


class Message(Protocol):
    """A consumed record, as both runtimes present it (Faust's messages, `Polled`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Any: ...


def headers_of(message: Message) -> dict[str, bytes]:
    raw = message.headers or ()
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: v for k, v in items if v is not None}


def deadletter_record(settings: Settings, message: Message, stage: str, rejected: Rejected) -> Record:
    """The original bytes, with the reason, field, feed and source position as headers."""
    headers = [
        *headers_of(message).items(),
        ("cwn.error.stage", stage.encode()),
        ("cwn.error.field", rejected.field.encode()),
        ("cwn.error.reason", rejected.reason.encode()),
        ("cwn.error.feed", rejected.feed.encode()),
        ("cwn.error.item", rejected.item.encode()),
        ("cwn.source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
    ]
    return (settings.topic(DEADLETTER), message.key, message.value, headers)


_REASON_LABELS = frozenset(
    {f["name"] for f in load_schema()["fields"]}
    | {"payload", "format", "feed", "producer", "header", "row", "event", "Event", "pattern", "value"}
)


def reason_label(field: str) -> str:
    """The dead-letter metric's label for a rejected field: its root when it is one of a fixed
    set, else `other` (a field name can come from the input, and labels must stay bounded)."""
    root = field.split(".")[0].split("[")[0]
    return root if root in _REASON_LABELS else "other"


@dataclass
class NormalisedBatch:
    """What one batch of raw records gives: the records to write, and what to count."""

    read: int
    records: list[Record] = field(default_factory=list)
    alerts: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    deadlettered: collections.Counter[str] = field(default_factory=collections.Counter)

    def count(self, m: Metrics, seconds: float) -> None:
        m.records_in.labels("normalise").inc(self.read)
        for outcome, count in self.outcomes.items():
            m.raw_records.labels(outcome).inc(count)
        for reason, count in self.skipped.items():
            m.skipped.labels(reason).inc(count)
        for label, count in self.deadlettered.items():
            m.deadlettered.labels("normalise", label).inc(count)
        m.records_out.labels("normalise").inc(self.alerts)
        m.stage_seconds.labels("normalise").observe(seconds)


def normalise_batch(
    settings: Settings,
    messages: Sequence[Message],
    feeds: FeedRegistry,
    limits: Limits,
    now: datetime,
    codec: AvroCodec,
    out_topic: str,
    writer_of: Callable[[str], str | None] | None = None,
) -> NormalisedBatch:
    """Raw partner records -> Avro alerts keyed by fingerprint, and dead letters.

    A record of many items (EVE lines, a STIX bundle) may give alerts and dead letters both:
    each rejected item is dead-lettered with the record's original bytes and its location.
    With `writer_of`, the producer is the one whose own raw topic the record was read from
    (on a secured broker only that producer may write it), not what its header claims.
    """
    batch = NormalisedBatch(len(messages))
    records = batch.records
    for message in messages:
        headers = headers_of(message)
        writer = writer_of(message.topic) if writer_of is not None else None
        parsed = normalise(message.value, headers, feeds, limits, now, writer)
        batch.outcomes[parsed.outcome] += 1
        batch.skipped.update(parsed.skipped)
        for rejected in parsed.rejected:
            records.append(deadletter_record(settings, message, "normalise", rejected))
            batch.deadlettered[reason_label(rejected.field)] += 1
        feed = [(FEED_HEADER, headers[FEED_HEADER])] if FEED_HEADER in headers else []
        for alert in parsed.alerts:
            records.append((out_topic, alert["fingerprint"].encode(), codec.encode(alert), feed))
        batch.alerts += len(parsed.alerts)
    return batch


#: sighting(i, alert): the dedup window after the batch's i-th alert, and whether to forward it.
Sighting = Callable[[int, Alert], tuple[Seen, Verdict]]


@dataclass
class DispatchedBatch:
    """What one batch of normalised alerts gives: the audit records (enriched alerts), the
    deliveries to members, and what to count."""

    read: int
    records: list[Record] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    effects: list[Effects] = field(default_factory=list)
    updates: int = 0
    spent: dict[str, float] = field(default_factory=lambda: {"dedupe": 0.0, "enrich": 0.0, "route": 0.0})

    def count(self, m: Metrics) -> None:
        """Count the stages' work (the deliveries are counted once written: `observe_deliveries`)."""
        forwarded = len(self.records)
        m.records_in.labels("dedupe").inc(self.read)
        m.records_out.labels("dedupe").inc(forwarded)
        m.duplicates.inc(self.read - forwarded)
        m.updates.inc(self.updates)
        m.records_in.labels("enrich").inc(forwarded)
        m.records_out.labels("enrich").inc(forwarded)
        m.records_in.labels("route").inc(forwarded)
        for stage, seconds in self.spent.items():
            m.stage_seconds.labels(stage).observe(seconds)
        for effects in self.effects:
            count_effects(m, effects)


def dispatch_batch(
    messages: Sequence[Message],
    sighting: Sighting,
    codec: AvroCodec,
    enriched_topic: str,
    index: RoutingIndex,
    rules: EnrichmentRules,
    asn: AsnDataset,
) -> DispatchedBatch:
    """Normalised alerts -> dedupe, enrich and route in one pass.

    Each first sighting and each update (a repeat more severe than any before it in the
    window) is enriched and becomes an audit record for `cwn.alerts.enriched`, and one
    delivery per member it reaches. Repeats give nothing but the state `sighting` keeps.
    """
    clock = time.perf_counter
    batch = DispatchedBatch(len(messages))
    records, deliveries, spent = batch.records, batch.deliveries, batch.spent
    for i, message in enumerate(messages):
        t0 = clock()
        alert = codec.decode(message.value)
        seen, verdict = sighting(i, alert)
        t1 = clock()
        spent["dedupe"] += t1 - t0
        if not verdict.forwarded:
            continue
        batch.updates += verdict is Verdict.UPDATE
        alert = enrich(stamp(alert, seen), index)
        asn.enrich(alert)
        effects = rules.apply(alert)
        records.append((enriched_topic, message.key, codec.encode(alert), []))
        t2 = clock()
        spent["enrich"] += t2 - t1
        batch.effects.append(effects)
        if effects.suppressed_by:
            continue  # on a warning list whole: kept in the audit stream, sent to nobody
        deliveries += [Delivery(member_id, rule, alert) for member_id, rule in receivers(alert, index)]
        spent["route"] += clock() - t2
    return batch


def count_effects(m: Metrics, effects: Effects) -> None:
    """Count what the enrichment rules did to one alert, by rule."""
    for name, removed in effects.removed.items():
        m.rule_effects.labels(name, "indicator-removed").inc(removed)
    for name, effect in (
        (effects.suppressed_by, "suppressed"),
        (effects.downgraded_by, "downgraded"),
        (effects.raised_by, "raised"),
        (effects.rule, "severity-set"),
    ):
        if name:
            m.rule_effects.labels(name, effect).inc()


def observe_deliveries(m: Metrics, deliveries: list[Delivery]) -> None:
    """Routed counts per rule kind and end-to-end latency: one metric update per rule and per
    alert, not per delivery (an alert's deliveries share its latency)."""
    m.records_out.labels("route").inc(len(deliveries))
    kinds: collections.Counter[str] = collections.Counter()
    for rule, count in collections.Counter(map(_rule_of, deliveries)).items():
        kinds[rule.partition(":")[0]] += count
    for kind, count in kinds.items():
        m.routed.labels(kind).inc(count)
    now = time.time()
    alerts = {id(d.alert): d.alert for d in deliveries}
    for key, count in collections.Counter(map(id, map(_alert_of, deliveries))).items():
        observe_many(m.latency_seconds, now - alerts[key]["time_observation"].timestamp(), count)


_rule_of = operator.attrgetter("rule")
_alert_of = operator.attrgetter("alert")
