"""The four agents: thin batch loops over the pure stage functions.

Each agent takes a batch of events (`take_events`), calls the pure function for each, sends
its output, and waits until every write is acknowledged before the batch is acknowledged;
Faust commits offsets only for acknowledged events. So at-least-once holds across a crash: a
batch is either fully written, or read again after restart. A write that cannot be made even
after the client's own retries ends the process at once (`fatal`), rather than letting the
batch be acknowledged without its output; the orchestrator restarts the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faust.streams import _current_event as faust_current_event

from connectors.core import Delivery, Outcome
from connectors.member_topic import MemberTopicConnector
from pipeline.alert import Rejected
from pipeline.control import DirectoryView
from pipeline.dedupe import Seen, Verdict, observe, stamp, to_us
from pipeline.enrich import enrich
from pipeline.metrics import Metrics
from pipeline.normalise import FEED_HEADER, Limits, normalise
from pipeline.routing import route
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, ENRICHED, NORMALISED, UNIQUE, member_topic

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
Record = tuple[str, bytes | None, bytes | None, Headers]
SendFn = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[Awaitable[Any]]]
Agent = Callable[[Any], Awaitable[None]]

_DELIVERY_ATTEMPTS = 5
_SLOW_WRITE_SECONDS = 5.0


@dataclass(frozen=True)
class StageContext:
    """What the agents share: settings, metrics, the directory view and the producer."""

    settings: Settings
    metrics: Metrics
    directory: DirectoryView
    send: SendFn

    async def batches(self, stream: Any) -> AsyncIterator[list[Any]]:
        async for events in stream.take_events(self.settings.batch_size, within=self.settings.batch_seconds):
            log.debug("Batch of %d from %s", len(events), events[0].message.topic)
            yield events

    async def write(self, records: Iterable[Record]) -> None:
        """Send records and wait for every acknowledgement; a failure ends the process."""
        acks = [await self.send(topic, key, value, headers) for topic, key, value, headers in records]
        pending = set(acks)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=_SLOW_WRITE_SECONDS)
            for ack in done:
                if ack.exception() is not None:
                    fatal(f"a write was not acknowledged: {ack.exception()!r}")
            if pending:
                log.warning("Still waiting for %d of %d writes to be acknowledged", len(pending), len(acks))

    async def directory_ready(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.directory.wait_ready)


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
        ("cwn.source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
    ]
    return (settings.topic(DEADLETTER), message.key, message.value, headers)


def normalise_agent(ctx: StageContext) -> Agent:
    """Raw partner records -> Avro alerts keyed by fingerprint, or dead letters."""
    limits = Limits(ctx.settings.max_message_bytes, ctx.settings.default_tlp)
    codec, out_topic = alert_codec(), ctx.settings.topic(NORMALISED)
    m = ctx.metrics

    async def agent(stream: Any) -> None:
        async for events in ctx.batches(stream):
            started = time.perf_counter()
            now = datetime.now(UTC)
            records: list[Record] = []
            for event in events:
                message = event.message
                headers = headers_of(message)
                try:
                    alerts = normalise(message.value, headers, limits, now)
                except Rejected as rejected:
                    records.append(deadletter_record(ctx.settings, message, "normalise", rejected))
                    m.deadlettered.labels("normalise", rejected.field.split(".")[0].split("[")[0]).inc()
                    continue
                feed = [(FEED_HEADER, headers[FEED_HEADER])] if FEED_HEADER in headers else []
                for alert in alerts:
                    records.append((out_topic, alert["fingerprint"].encode(), codec.encode(alert), feed))
            await ctx.write(records)
            m.records_in.labels("normalise").inc(len(events))
            m.records_out.labels("normalise").inc(sum(r[0] == out_topic for r in records))
            m.stage_seconds.labels("normalise").observe(time.perf_counter() - started)

    return agent


def dedupe_agent(ctx: StageContext, table: Any) -> Agent:
    """Normalised alerts -> the first sighting of each fingerprint within the window."""
    codec, out_topic = alert_codec(), ctx.settings.topic(UNIQUE)
    window_us = ctx.settings.dedup_window_seconds * 1_000_000
    m = ctx.metrics

    async def agent(stream: Any) -> None:
        async for events in ctx.batches(stream):
            started = time.perf_counter()
            records: list[Record] = []
            duplicates = 0
            for event in events:
                message = event.message
                alert = codec.decode(message.value)
                with table_event(event):
                    stored = table.get(message.key)
                    seen, verdict = observe(
                        Seen.from_bytes(stored) if stored else None,
                        to_us(alert["time_observation"]),
                        (message.partition, message.offset),
                        window_us,
                    )
                    if verdict is not Verdict.REPLAY:
                        table[message.key] = seen.to_bytes()
                if verdict is Verdict.DUPLICATE:
                    duplicates += 1
                    continue
                records.append((out_topic, message.key, codec.encode(stamp(alert, seen)), []))
            await ctx.write(records)
            m.records_in.labels("dedupe").inc(len(events))
            m.records_out.labels("dedupe").inc(len(records))
            m.duplicates.inc(duplicates)
            m.stage_seconds.labels("dedupe").observe(time.perf_counter() - started)

    return agent


def enrich_agent(ctx: StageContext) -> Agent:
    """Unique alerts -> alerts with members inside and sectors: the audit stream."""
    codec, out_topic = alert_codec(), ctx.settings.topic(ENRICHED)
    m = ctx.metrics

    async def agent(stream: Any) -> None:
        await ctx.directory_ready()
        async for events in ctx.batches(stream):
            started = time.perf_counter()
            index = ctx.directory.index
            records: list[Record] = [
                (out_topic, e.message.key, codec.encode(enrich(codec.decode(e.message.value), index)), [])
                for e in events
            ]
            await ctx.write(records)
            m.records_in.labels("enrich").inc(len(events))
            m.records_out.labels("enrich").inc(len(records))
            m.stage_seconds.labels("enrich").observe(time.perf_counter() - started)

    return agent


def route_agent(ctx: StageContext) -> Agent:
    """Enriched alerts -> one record per (alert, member) on the member's own topic."""
    codec, settings, m = alert_codec(), ctx.settings, ctx.metrics

    def format_for(member_id: str) -> str:
        member = ctx.directory.index.directory.get(member_id)
        return member.delivery_format if member else "json"

    connector = MemberTopicConnector(
        lambda topic, key, value, headers: ctx.send(topic, key, value, headers),
        lambda member_id: member_topic(settings, member_id),
        format_for,
    )

    async def agent(stream: Any) -> None:
        await ctx.directory_ready()
        async for events in ctx.batches(stream):
            started = time.perf_counter()
            index = ctx.directory.index
            deliveries = []
            for event in events:
                alert = codec.decode(event.message.value)
                deliveries += [Delivery(d.member_id, d.rule, alert) for d in route(alert, index)]
            await deliver(connector, deliveries)
            now = time.time()
            for delivery in deliveries:
                m.routed.labels(delivery.rule.partition(":")[0]).inc()
                m.latency_seconds.observe(now - delivery.alert["time_observation"].timestamp())
            m.records_in.labels("route").inc(len(events))
            m.records_out.labels("route").inc(len(deliveries))
            m.stage_seconds.labels("route").observe(time.perf_counter() - started)

    return agent


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
