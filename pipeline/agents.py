"""The two agents: thin batch loops over the pure stage functions.

`normalise` turns raw partner records into alerts keyed by fingerprint; `dispatch` dedupes,
enriches and routes them. Each agent takes a batch of events (`take_events`), calls the pure
functions for each and sends its output; the batch's events are let go only once every write
is acknowledged, and in the order they were read (`InFlight`: meanwhile the agent goes on with
the next batches), and Faust commits offsets only for events let go. So at-least-once
holds across a crash: a batch is either fully written, or read again after restart. A write
that cannot be made even after the client's own retries ends the process at once (`fatal`),
rather than letting the batch be acknowledged without its output; the orchestrator restarts
the worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
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
from pipeline.alert import Alert
from pipeline.control import DirectoryView
from pipeline.dedupe import Seen, Verdict, observe_alert
from pipeline.metrics import Metrics
from pipeline.normalise import Limits
from pipeline.producer import Record, Refused
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.stages import dispatch_batch, normalise_batch, observe_deliveries
from pipeline.table_sweep import TableSweep
from pipeline.topics import ENRICHED, NORMALISED, member_topic

log = logging.getLogger(__name__)

SendBatchFn = Callable[[list[Record]], Awaitable["asyncio.Future[list[Refused]]"]]
Agent = Callable[[Any], Awaitable[None]]

_DELIVERY_ATTEMPTS = 5
_SLOW_WRITE_SECONDS = 5.0
#: The in-flight window, in full batches' events: what bounds an agent's memory at full load.
_FULL_BATCHES_IN_FLIGHT = 4


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

    def in_flight(self) -> InFlight:
        """An agent's window of batches in flight: four full batches' events."""
        return InFlight(limit=_FULL_BATCHES_IN_FLIGHT * self.settings.batch_size)

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
    events go only once the batch's completion (every write acknowledged) has finished, and
    never before every batch added earlier has been let go: events are let go in the order
    they were read, so a crash at any point re-reads every batch whose output is not safe.

    At most `limit` events are held; past that, the oldest batch is awaited, which is the
    back-pressure. The bound is in events, not batches: under moderate load a batch holds an
    alert or two, and a window of a few batches filled whenever one answer was slow, stopping
    the agent while the broker had room (`docs/performance.md`, "The in-flight window").
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: collections.deque[tuple[asyncio.Future[None], int]] = collections.deque()
        self._held = 0

    async def add(self, events: list[Any], completion: Awaitable[None]) -> None:
        earlier = self._tasks[-1][0] if self._tasks else None

        async def settle() -> None:
            await completion
            # Faust commits a partition up to the first run of consecutive acknowledged
            # offsets, and lets that run start one past its last commit (or anywhere, when it
            # has no commit for the partition yet). A later batch let go before an earlier one
            # would commit past events whose writes are still in flight, and a stop before they
            # land would lose them. Batches complete out of order when their writes go to
            # different partitions.
            if earlier is not None:
                await earlier
            for event in events:
                event.ack()

        self._tasks.append((asyncio.ensure_future(settle()), len(events)))
        self._held += len(events)
        while self._tasks and (self._tasks[0][0].done() or self._held > self.limit):
            oldest, count = self._tasks.popleft()
            self._held -= count
            await oldest


def fatal(reason: str) -> None:
    """End the worker without committing anything more: the unacknowledged batch is read again."""
    log.critical("Stopping the worker at once so that no record is lost: %s", reason)
    logging.shutdown()
    os._exit(70)


@contextlib.contextmanager
def table_event(event: Any | None) -> Iterator[None]:
    """Make `event` the current event of this task, for the table's partition lookups (None:
    no event, so a lookup searches every partition the worker holds).

    Faust tables find the partition of a key through the current event, which batch iteration
    does not set. The context variable is per task, so this never touches the stream's own
    bookkeeping (setting the stream's attribute instead would race with its take buffer).
    """
    token = faust_current_event.set(weakref.ref(event) if event is not None else None)
    try:
        yield
    finally:
        faust_current_event.reset(token)


def normalise_agent(ctx: StageContext, writer_of: Callable[[str], str | None] | None = None) -> Agent:
    """Raw partner records -> Avro alerts keyed by fingerprint, and dead letters
    (`pipeline.stages.normalise_batch`); `writer_of` as there."""
    limits = Limits(ctx.settings.max_message_bytes)
    codec, out_topic = alert_codec(), ctx.settings.topic(NORMALISED)

    async def agent(stream: Any) -> None:
        in_flight = ctx.in_flight()
        async for events in ctx.batches(stream):
            started = time.perf_counter()
            messages = [event.message for event in events]
            batch = normalise_batch(
                ctx.settings,
                messages,
                ctx.directory.feeds,
                limits,
                datetime.now(UTC),
                codec,
                out_topic,
                writer_of,
            )
            records = batch.records
            await in_flight.add(events, ctx.confirm(await ctx.send_batch(records), len(records)))
            batch.count(ctx.metrics, time.perf_counter() - started)

    return agent


def dispatch_agent(ctx: StageContext, table: Any, sweep: TableSweep) -> Agent:
    """Normalised alerts -> dedupe, enrich and route in one pass; after each batch, one step of
    the table's expiry (`sweep`), two entries per alert of the batch.

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

    def sighting(events: list[Any], i: int, alert: Alert) -> tuple[Seen, Verdict]:
        """The dedup window after the i-th event's sighting, and whether to forward it."""
        event = events[i]
        message = event.message
        with table_event(event):
            stored = table.get(message.key)
            seen, verdict = observe_alert(stored, alert, (message.partition, message.offset), window_us)
            if verdict is not Verdict.REPLAY:
                table[message.key] = seen.to_bytes()
        return seen, verdict

    async def agent(stream: Any) -> None:
        await ctx.directory_ready()
        in_flight = ctx.in_flight()
        async for events in ctx.batches(stream):
            started = time.perf_counter()
            view = ctx.directory
            batch = dispatch_batch(
                [event.message for event in events],
                functools.partial(sighting, events),
                codec,
                enriched_topic,
                view.index,
                view.rules,
                view.asn,
            )
            audit = await ctx.send_batch(batch.records)
            batch.count(m)
            with table_event(None):
                # Two entries looked at per alert read: the sweep outpaces the keys the batches
                # add, and costs the same per alert whatever the batch size.
                m.dedup_expired.inc(sweep.step(2 * len(events)))
            await in_flight.add(events, complete(audit, batch.records, batch.deliveries))
            log.debug("Dispatched %d events in %.3fs", len(events), time.perf_counter() - started)

    async def complete(
        audit: asyncio.Future[list[Refused]], records: list[Record], deliveries: list[Delivery]
    ) -> None:
        await deliver(connector, deliveries)
        await ctx.confirm(audit, len(records))
        observe_deliveries(m, deliveries)

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
