"""The two agents: thin batch loops over the pure stage functions.

`normalise` turns raw partner records into alerts keyed by fingerprint; `dispatch` dedupes,
enriches and routes them. Each agent takes a batch of events (`take_events`), calls the pure
functions for each and sends its output; the batch's events are let go only once every write
is acknowledged (`InFlight`: meanwhile the agent goes on with the next batches), and Faust
commits offsets only for events let go. So at-least-once
holds across a crash: a batch is either fully written, or read again after restart. A write
that cannot be made even after the client's own retries ends the process at once (`fatal`),
rather than letting the batch be acknowledged without its output; the orchestrator restarts
the worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import operator
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faust.streams import _current_event as faust_current_event

from connectors.core import Delivery, Outcome
from connectors.member_topic import MemberTopicConnector
from pipeline.alert import SEVERITY_RANK, Alert, load_schema
from pipeline.control import DirectoryView
from pipeline.dedupe import Seen, Verdict, observe, stamp, to_us
from pipeline.enrich import enrich
from pipeline.metrics import Metrics, observe_many
from pipeline.normalise import FEED_HEADER, Limits, normalise
from pipeline.producer import Record, Refused
from pipeline.rejected import Rejected
from pipeline.routing import route
from pipeline.rules import Effects
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, ENRICHED, NORMALISED, member_topic

log = logging.getLogger(__name__)

SendBatchFn = Callable[[list[Record]], Awaitable["asyncio.Future[list[Refused]]"]]
Agent = Callable[[Any], Awaitable[None]]

_DELIVERY_ATTEMPTS = 5
_SLOW_WRITE_SECONDS = 5.0


@dataclass(frozen=True)
class StageContext:
    """What the agents share: settings, metrics, the directory view and the producer."""

    settings: Settings
    metrics: Metrics
    directory: DirectoryView
    send_batch: SendBatchFn

    async def batches(self, stream: Any) -> AsyncIterator[list[Any]]:
        """Batches of events, each held (see `InFlight`) until the agent lets it go."""
        async for events in stream.take_events(self.settings.batch_size, within=self.settings.batch_seconds):
            log.debug("Batch of %d from %s", len(events), events[0].message.topic)
            for event in events:
                event.message.incref()
            yield events

    async def confirm(self, acks: asyncio.Future[list[Refused]], count: int) -> None:
        """Wait for a batch's acknowledgements; a refusal ends the process."""
        while True:
            done, _ = await asyncio.wait({acks}, timeout=_SLOW_WRITE_SECONDS)
            if done:
                break
            log.warning("Still waiting for %d writes to be acknowledged", count)
        refused = acks.result()
        if refused:
            fatal(f"{len(refused)} writes were not acknowledged, the first: {refused[0].error!r}")

    async def directory_ready(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.directory.wait_ready)


class InFlight:
    """Batches whose writes are in flight: an agent goes on with the next batch while the broker
    acknowledges the last one, instead of idling for the round trip.

    `StageContext.batches` holds each event (one more reference on its message), so Faust's
    own acknowledgement after the batch does not let the offset be committed; `add` lets the
    events go only once the batch's completion (every write acknowledged) has finished. Faust
    commits each partition up to its first event not yet let go, so a crash at any point
    re-reads every batch whose output is not safe. At most `limit` batches are in flight; when
    the window is full the oldest is awaited, which is the back-pressure.
    """

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self._tasks: collections.deque[asyncio.Future[None]] = collections.deque()

    async def add(self, events: list[Any], completion: Awaitable[None]) -> None:
        async def settle() -> None:
            await completion
            for event in events:
                event.ack()

        self._tasks.append(asyncio.ensure_future(settle()))
        while self._tasks and (self._tasks[0].done() or len(self._tasks) > self.limit):
            await self._tasks.popleft()


def fatal(reason: str) -> None:
    """End the worker without committing anything more: the unacknowledged batch is read again."""
    log.critical("Stopping the worker at once so that no record is lost: %s", reason)
    logging.shutdown()
    os._exit(70)


@contextlib.contextmanager
def table_event(event: Any) -> Iterator[None]:
    """Make `event` the current event of this task, for the table's partition lookups.

    Faust tables find the partition of a key through the current event, which batch iteration
    does not set. The context variable is per task, so this never touches the stream's own
    bookkeeping (setting the stream's attribute instead would race with its take buffer).
    """
    token = faust_current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_current_event.reset(token)


def headers_of(message: Any) -> dict[str, bytes]:
    raw = message.headers or ()
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: v for k, v in items if v is not None}


def deadletter_record(settings: Settings, message: Any, stage: str, rejected: Rejected) -> Record:
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


def normalise_agent(ctx: StageContext, writer_of: Callable[[str], str | None] | None = None) -> Agent:
    """Raw partner records -> Avro alerts keyed by fingerprint, and dead letters.

    A record of many items (EVE lines, a STIX bundle) may give alerts and dead letters both:
    each rejected item is dead-lettered with the record's original bytes and its location.
    With `writer_of`, the producer is the one whose own raw topic the record was read from
    (on a secured broker only that producer may write it), not what its header claims.
    """
    limits = Limits(ctx.settings.max_message_bytes)
    codec, out_topic = alert_codec(), ctx.settings.topic(NORMALISED)
    m = ctx.metrics

    async def agent(stream: Any) -> None:
        in_flight = InFlight()
        async for events in ctx.batches(stream):
            started = time.perf_counter()
            now = datetime.now(UTC)
            feeds = ctx.directory.feeds
            records: list[Record] = []
            outcomes: collections.Counter[str] = collections.Counter()
            for event in events:
                message = event.message
                headers = headers_of(message)
                writer = writer_of(message.topic) if writer_of is not None else None
                parsed = normalise(message.value, headers, feeds, limits, now, writer)
                outcomes[parsed.outcome] += 1
                for reason, count in parsed.skipped.items():
                    m.skipped.labels(reason).inc(count)
                for rejected in parsed.rejected:
                    records.append(deadletter_record(ctx.settings, message, "normalise", rejected))
                    m.deadlettered.labels("normalise", reason_label(rejected.field)).inc()
                feed = [(FEED_HEADER, headers[FEED_HEADER])] if FEED_HEADER in headers else []
                for alert in parsed.alerts:
                    records.append((out_topic, alert["fingerprint"].encode(), codec.encode(alert), feed))
            await in_flight.add(events, ctx.confirm(await ctx.send_batch(records), len(records)))
            m.records_in.labels("normalise").inc(len(events))
            for outcome, count in outcomes.items():
                m.raw_records.labels(outcome).inc(count)
            m.records_out.labels("normalise").inc(sum(r[0] == out_topic for r in records))
            m.stage_seconds.labels("normalise").observe(time.perf_counter() - started)

    return agent


def dispatch_agent(ctx: StageContext, table: Any) -> Agent:
    """Normalised alerts -> dedupe, enrich and route in one pass.

    Writes each first sighting and each update (a repeat more severe than any before it in the
    window), enriched, to `cwn.alerts.enriched` (the audit stream) and one record per (alert,
    member) to the member topics. Doing the three stages in one agent saves
    two topic hops (a decode, an encode, a produce and a fetch each) on the hot path; they stay
    separate pure functions, with their own metrics.
    """
    codec, settings, m = alert_codec(), ctx.settings, ctx.metrics
    enriched_topic = settings.topic(ENRICHED)
    window_us = settings.dedup_window_seconds * 1_000_000

    def format_for(member_id: str) -> str:
        member = ctx.directory.index.directory.get(member_id)
        return member.delivery_format if member else "json"

    connector = MemberTopicConnector(
        ctx.send_batch, lambda member_id: member_topic(settings, member_id), format_for
    )

    def sighting(event: Any, alert: Alert) -> tuple[Seen, Verdict]:
        """The dedup window after this sighting, and whether to forward it."""
        message = event.message
        with table_event(event):
            stored = table.get(message.key)
            seen, verdict = observe(
                Seen.from_bytes(stored) if stored else None,
                to_us(alert["time_observation"]),
                (message.partition, message.offset),
                window_us,
                SEVERITY_RANK[alert["severity"]],
            )
            if verdict is not Verdict.REPLAY:
                table[message.key] = seen.to_bytes()
        return seen, verdict

    async def agent(stream: Any) -> None:
        await ctx.directory_ready()
        in_flight = InFlight()
        async for events in ctx.batches(stream):
            clock = time.perf_counter
            started = clock()
            index, rules, asn = ctx.directory.index, ctx.directory.rules, ctx.directory.asn
            records: list[Record] = []
            deliveries: list[Delivery] = []
            spent = {"dedupe": 0.0, "enrich": 0.0, "route": 0.0}
            updates = 0
            for event in events:
                t0 = clock()
                alert = codec.decode(event.message.value)
                seen, verdict = sighting(event, alert)
                t1 = clock()
                spent["dedupe"] += t1 - t0
                if not verdict.forwarded:
                    continue
                updates += verdict is Verdict.UPDATE
                alert = enrich(stamp(alert, seen), index)
                asn.enrich(alert)
                effects = rules.apply(alert)
                records.append((enriched_topic, event.message.key, codec.encode(alert), []))
                t2 = clock()
                spent["enrich"] += t2 - t1
                count_effects(m, effects)
                if effects.suppressed_by:
                    continue  # on a warning list whole: kept in the audit stream, sent to nobody
                deliveries += [Delivery(d.member_id, d.rule, alert) for d in route(alert, index)]
                spent["route"] += clock() - t2
            audit = await ctx.send_batch(records)
            forwarded = len(records)
            m.records_in.labels("dedupe").inc(len(events))
            m.records_out.labels("dedupe").inc(forwarded)
            m.duplicates.inc(len(events) - forwarded)
            m.updates.inc(updates)
            m.records_in.labels("enrich").inc(forwarded)
            m.records_out.labels("enrich").inc(forwarded)
            m.records_in.labels("route").inc(forwarded)
            for stage, seconds in spent.items():
                m.stage_seconds.labels(stage).observe(seconds)
            await in_flight.add(events, complete(audit, records, deliveries))
            log.debug("Dispatched %d events in %.3fs", len(events), clock() - started)

    async def complete(
        audit: asyncio.Future[list[Refused]], records: list[Record], deliveries: list[Delivery]
    ) -> None:
        await deliver(connector, deliveries)
        await ctx.confirm(audit, len(records))
        m.records_out.labels("route").inc(len(deliveries))
        observe_deliveries(m, deliveries)

    return agent


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


async def deliver(connector: MemberTopicConnector, deliveries: list[Delivery]) -> None:
    """Send until every delivery is acknowledged; give up (fatally) after a few attempts."""
    pending = deliveries
    for attempt in range(_DELIVERY_ATTEMPTS):
        if not pending:
            return
        results = await connector.send_batch(pending)
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        if failed:
            fatal(f"the router produced a delivery its own connector refuses: {failed[0].detail}")
        pending = [d for d, r in zip(pending, results, strict=True) if r.outcome is Outcome.RETRY]
        if pending:
            log.warning("Retrying %d member deliveries (attempt %d)", len(pending), attempt + 1)
            await asyncio.sleep(0.5 * 2**attempt)
    if pending:
        fatal(f"{len(pending)} member deliveries were not acknowledged after {_DELIVERY_ATTEMPTS} attempts")
