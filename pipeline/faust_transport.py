"""Faust, changed in five places: a consumer that runs on the worker's event loop rather than
a thread of its own (`ConsumerThread`), asks the broker for new records at most
`fetch_wait_ms` ahead, hands each partition's records to the agents in unbroken offset order
from where it last sought, and never commits past a record still in flight or from an unknown
base, and table recovery that reads the bulk of a changelog in batches.

Faust creates its aiokafka consumer with a fixed 1.5 s fetch wait. aiokafka sends one fetch
per broker for the partitions that have nothing buffered; a partition that becomes fetchable
while such a fetch is held by the broker (its buffered records were just consumed) waits for
that fetch to expire. On a pipeline whose stages read each other's output, those waits add up
to half a second and more on a quiet stream. A short wait bounds them; the broker still answers
at once when records arrive.

Faust replays a table's changelog one event at a time through its stream machinery, about
9,000 records/s here: a worker that lost its local state (a new node, an empty volume) took two
minutes per million dedup keys before it processed anything. `Recovery` first reads each
assigned changelog partition up to the end Faust has just measured with a confluent-kafka
consumer, in batches written to RocksDB with their offsets, as Faust itself writes them, and
then lets Faust go on from there: only what is left, if anything, takes the slow path.

Faust takes a jump in a partition's offsets for a hole in the log (transaction markers,
compaction) and counts the skipped offsets as acknowledged, and it drops any record below the
last offset it read. After a rebalance that needs no table recovery, though, it resumes the
flow before it seeks the partitions to the group's commits, so records read from wherever the
client stood reach the agents first (seen in the rebalance phase of `cwn bench`: a partition
sought to 443 delivered 447 first, then 443 on), and it counted 444-446 as done and dropped
the re-read of 443-518; with a jump of one it counts nothing but commits one past the record
it dropped. `Consumer.getmany` therefore delivers nothing of a partition before its seek, and
then its records only in sequence: one below the next expected offset was delivered already;
one above it makes the consumer seek to the expected offset again, and only the same jump
seen again from there is taken for a hole.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from enum import Enum
from typing import Any, NamedTuple

import faust
from aiokafka.errors import IllegalStateError
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.tuples import ack_lock

from pipeline.kafka import read_partitions
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class OnTheLoop:
    """What a `ConsumerThread` starts in place of a thread: its service, as a task of the
    running event loop."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.service._serve())

    def stop(self) -> None:
        """Nothing to join: `ConsumerThread.stop` awaits the task."""

    def is_alive(self) -> bool:
        return self.task is not None and not self.task.done()


async def call_here(fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fun(*args, **kwargs)`, awaited when it gives an awaitable, in the caller's own task."""
    result = fun(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer service, run on the worker's event loop instead of a thread.

    Faust runs the consumer on a thread of its own, with its own event loop, and every call
    into it (each `getmany` above all) goes through a queue to that loop and its answer back,
    two wake-ups across threads. Both threads then run Python and contend for the GIL: a
    syscall on either side (a socket write, a wake-up) hands the GIL over, and taking it back
    can wait for the other thread's switch interval. On the worker's own loop the calls are
    plain awaits; the consumer's work (fetches, heartbeats, commits) is the same
    (`docs/performance.md`, "The consumer on the worker's loop"). Nothing on that loop blocks
    it for long: the stages are batches of bounded size, and the tables' bulk recovery and
    the dedup count run on executor threads, so heartbeats keep their pace.
    """

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, Worker=OnTheLoop, **kwargs)

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await call_here(fun, *args, **kwargs)

    async def _gather_remaining_tasks(self) -> None:
        # A service thread cancels every task left on its loop when it ends; this loop is the
        # worker's, and its tasks are the worker's to stop.
        return

    async def stop(self) -> None:
        await super().stop()
        task = self._thread.task if isinstance(self._thread, OnTheLoop) else None
        if task is not None and task is not asyncio.current_task():
            # A failure of the service was reported when it happened (`crash`).
            await asyncio.gather(task, return_exceptions=True)

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_wait_ms  # read when the fetcher starts
        return consumer


class Place(Enum):
    """Where a record fetched for a partition stands against the partition's sequence."""

    NEXT = "next"  # the offset expected next (or none is expected yet): deliver it
    SEEN = "seen"  # below it: delivered already, or read before the last seek
    JUMP = "jump"  # above it, for the first time: seek to the expected offset again
    HOLE = "hole"  # above it, and the same jump again after that seek: no records lie between


def place(expected: int | None, jump: tuple[int, int] | None, offset: int) -> Place:
    """Where `offset` stands when `expected` is the partition's next offset (None: no seek has
    fixed it) and `jump` the (expected, offset) of the last jump that made the consumer seek."""
    if expected is None or offset == expected:
        return Place.NEXT
    if offset < expected:
        return Place.SEEN
    return Place.HOLE if jump == (expected, offset) else Place.JUMP


class Consumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Partitions whose committed offset has been read back from the broker since they
        #: were (last) assigned: only those are delivered and committed.
        self._based: frozenset[TP] = frozenset()
        #: For each partition of an acknowledged topic, the offset of the record to deliver
        #: next, from the last seek on; and the last jump past it that made the consumer seek.
        self._next: dict[TP, int] = {}
        self._jumps: dict[TP, tuple[int, int]] = {}
        #: For each partition not yet sought, the lowest offset held back from the agents.
        self._held: dict[TP, int] = {}

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Faust's seek of every assigned partition to the group's commit; then each partition
        whose records were held back meanwhile is sought again, to its commit (or, with none,
        to the lowest offset held back): the client's own seek may have run before they were
        read, and their offsets would otherwise be passed over."""
        await super().perform_seek()
        assigned = self.assignment()
        # Faust has just set each partition's read offset to the commit it sought to.
        read = self._read_offset
        self._next = {tp: offset for tp in assigned if (offset := read.get(tp)) is not None}
        self._jumps = {}
        self._based = frozenset(assigned)
        held, self._held = self._held, {}
        again = {tp: self._next.setdefault(tp, lowest) for tp, lowest in held.items() if tp in assigned}
        if again:
            await self._seek_again(again)

    async def _seek_again(self, offsets: dict[TP, int]) -> None:
        """Seek each partition to its offset in `offsets`. A partition the client no longer
        holds (a rebalance has begun) is left: its next assignment seeks it to its commit."""
        try:
            await self.seek_wait(offsets)
        except (IllegalStateError, AssertionError) as exc:  # aiokafka's words for "not assigned"
            log.info("Not sought again, a rebalance has begun: %s (%r)", sorted(offsets), exc)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._based = self._based - set(revoked)
        for tp in revoked:
            self._next.pop(tp, None)
            self._jumps.pop(tp, None)
            self._held.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """Faust's fetched records, each partition of an acknowledged topic in unbroken offset
        order from its last seek (`place`): what the agents see, Faust acknowledges and
        commits is then exactly the log, whatever a fetch from before the seek returns.

        A partition assigned and not yet sought to the group's commit delivers nothing: after
        a rebalance that needs no table recovery, Faust resumes the flow before it seeks, and
        what it read meanwhile came from wherever the client stood. `perform_seek` reads it
        again.

        Faust's reader drops a record below the partition's read offset and counts a jump
        above it as a hole, acknowledged; the read offset is set to each record delivered here
        first, so it does neither. A hole confirmed here is recorded as acknowledged, offsets
        and all (Faust's own gap bookkeeping leaves out the offset at its commit).
        """
        acking = self.app.topics.acks_enabled_for
        resought: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if not acking(tp.topic):
                yield tp, message
                continue
            offset = message.offset
            if tp not in self._based:
                if offset < self._held.get(tp, offset + 1):
                    self._held[tp] = offset
                continue
            if tp in resought:  # the rest of a fetch from the wrong position
                continue
            expected = self._next.get(tp)
            where = place(expected, self._jumps.get(tp), offset)
            if where is Place.SEEN:
                continue
            if where is Place.JUMP:
                assert expected is not None
                log.info("%s: read offset %d where %d comes next; seeking to it again", tp, offset, expected)
                self._jumps[tp] = (expected, offset)
                resought.add(tp)
                await self._seek_again({tp: expected})
                continue
            if where is Place.HOLE:
                assert expected is not None
                log.info("%s: no records at offsets %d-%d", tp, expected, offset - 1)
                del self._jumps[tp]
                gap = self._gap[tp]
                gap.addi(expected, offset)
                gap.merge_overlaps()
            self._next[tp] = offset + 1
            self._read_offset[tp] = offset
            yield tp, message

    def bookkeeping(self) -> dict[TP, dict[str, Any]]:
        """For each assigned partition of an acknowledged topic, what decides its delivery and
        commits: sought since assigned, the commit, the offset expected next, the last jump,
        the lowest acknowledged offset and hole, and the lowest record in flight."""
        in_flight = lowest_in_flight(self._unacked_messages)
        acking = self.app.topics.acks_enabled_for
        out = {}
        for tp in sorted(self.assignment()):
            if not acking(tp.topic):
                continue
            acked, gap = self._acked.get(tp), self._gap.get(tp)
            out[tp] = {
                "sought": tp in self._based,
                "committed": self._committed_offset.get(tp),
                "next": self._next.get(tp),
                "jump": self._jumps.get(tp),
                "lowest_acked": min(acked) if acked else None,
                "lowest_hole": gap.begin() if gap else None,
                "lowest_in_flight": in_flight.get(tp),
            }
        return out

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Faust's offsets to commit, leaving out each partition whose lowest acknowledged
        offset lies above a record delivered to a stream and not yet acknowledged, and each
        partition assigned since the worker last read the group's commits back.

        Faust commits a partition up to the end of its first run of consecutive acknowledged
        offsets. It lets that run start one past its last commit, or anywhere when it holds no
        commit for the partition (a new group, or just after a rebalance), so a record still
        in flight below the run would be committed past, and lost if the worker then stopped
        before its output was written. Such a partition is committed at a later commit, once
        the record is acknowledged.

        A rebalance makes Faust forget its commits and acknowledgements for every partition;
        until it seeks the partitions it is given back to the group's commits, a batch read
        before the rebalance and acknowledged late would be committed from nowhere, past
        offsets this worker may never have read. Those acknowledgements wait for the seek,
        after which `_new_offset`'s check against the commit applies to them.
        """
        based = self._based
        known = [tp for tp in tps if tp in based]
        return super()._filter_committable_offsets(safe_to_commit(known, self._acked, self._unacked_messages))

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next commit for `tp`, once its acknowledged offsets (holes included) begin
        at the partition's commit.

        Faust lets them begin one past it, taking the offset at the commit for a transaction
        marker; but a record there not delivered since the seek (after a rebalance, the one
        the worker was reading when its flow stopped) would then be committed unread.
        `getmany` records a marker, like any hole, as acknowledged.
        """
        committed = self._committed_offset.get(tp)
        if committed is not None:
            acked, gap = self._acked.get(tp), self._gap.get(tp)
            starts = ([min(acked)] if acked else []) + ([gap.begin()] if gap else [])
            if starts and min(starts) > committed:
                return None
        return super()._new_offset(tp)


class Transport(driver.Transport):
    Consumer = Consumer


def lowest_in_flight(unacked: Iterable[Any]) -> dict[TP, int]:
    """For each partition, the lowest offset of a message of `unacked` not yet acknowledged."""
    with ack_lock:  # Faust's own lock on its acknowledgement bookkeeping
        pending = [(message.tp, message.offset) for message in unacked if not message.acked]
    lowest: dict[TP, int] = {}
    for tp, offset in pending:
        if offset < lowest.get(tp, offset + 1):
            lowest[tp] = offset
    return lowest


def safe_to_commit(tps: Iterable[TP], acked: Mapping[TP, list[int]], unacked: Iterable[Any]) -> list[TP]:
    """The partitions of `tps` safe to commit: those whose lowest acknowledged offset (in
    `acked`) is not above the lowest offset of a message of `unacked` that is not acknowledged."""
    lowest = lowest_in_flight(unacked)
    return [tp for tp in tps if tp not in lowest or not acked.get(tp) or min(acked[tp]) <= lowest[tp]]


class _Message(NamedTuple):
    tp: TP
    partition: int
    offset: int
    key: bytes
    value: bytes | None


class _Event(NamedTuple):
    """The part of a Faust event that `Store.apply_changelog_batch` reads."""

    message: _Message


def restore_in_bulk(
    settings: Settings, store: RocksDBStore, topic: str, spans: dict[int, tuple[int, int]],
    stop: Callable[[], bool], on_batch: Callable[[int], None] = lambda n: None,
) -> int:  # fmt: skip
    """Apply the changelog records of `topic` in each partition's (first, last) offset span to
    `store`, batch after batch, each batch with the offsets it reached, until every span is read
    or `stop()` is true; `on_batch` is told each batch's size once it is written. Returns how
    many records were applied."""
    applied = 0
    start = {p: first for p, (first, _) in spans.items()}
    last = {p: end for p, (_, end) in spans.items()}
    for records in read_partitions(settings, topic, start, last, stop):
        events = [
            _Event(_Message(TP(topic, m.partition()), m.partition(), m.offset(), m.key(), m.value()))
            for m in records
        ]
        store.apply_changelog_batch(events, to_key=None, to_value=None)
        on_batch(len(records))
        applied += len(records)
    return applied


class Recovery(FaustRecovery):
    """Faust's recovery, with the changelog of each active RocksDB table partition first read
    in bulk (`restore_in_bulk`) from the offset the store holds to the end Faust measured.

    The bulk read runs on a thread, so the event loop stays free, and stops between batches
    when a new rebalance begins or after half of Faust's wait for this step (past it, Faust
    would give the recovery up); a bulk read never runs beside another. What it has written
    stays, with its offsets, and Faust's own replay begins where it stopped.
    """

    def __init__(
        self, *args: Any, settings: Settings, on_restored: Callable[[int], None], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._settings, self._on_restored = settings, on_restored
        self._bulk = threading.Lock()

    async def _build_offsets(self, consumer: Any, tps: set[TP], destination: Any, title: str) -> None:
        if title == "active":
            await self._restore_actives(tps, destination)
        await super()._build_offsets(consumer, tps, destination, title)

    async def _restore_actives(self, tps: set[TP], offsets: Any) -> None:
        work: dict[tuple[Any, str], dict[int, tuple[int, int]]] = {}
        for tp in tps:
            table, end, held = self.tp_to_table[tp], self.active_highwaters.get(tp), offsets.get(tp)
            first = 0 if held is None or held < 0 else held + 1
            if isinstance(table.data, RocksDBStore) and end is not None and end >= first:
                work.setdefault((table.data, tp.topic), {})[tp.partition] = (first, end)
        if not work:
            return
        stopped = threading.Event()
        budget = time.monotonic() + float(self.app.conf.broker_request_timeout) / 2
        rebalances = self.app.rebalancing_count

        def stop() -> bool:
            # A new rebalance counts at once, before partitions are revoked and their
            # databases closed: no batch is written for a partition this worker gave up.
            return stopped.is_set() or self.app.rebalancing_count != rebalances or time.monotonic() > budget

        def run() -> int:
            applied = 0
            with self._bulk:
                for (store, topic), spans in work.items():
                    applied += restore_in_bulk(self._settings, store, topic, spans, stop, self._on_restored)
            return applied

        began = time.monotonic()
        try:
            applied = await asyncio.get_running_loop().run_in_executor(None, run)
        except BaseException:
            stopped.set()  # cancelled by a new rebalance: the thread ends after its batch
            raise
        seconds, left = time.monotonic() - began, 0
        for (store, topic), spans in work.items():
            for partition, (_, end) in spans.items():
                tp = TP(topic, partition)
                held = store.persisted_offset(tp)
                if held is not None:
                    offsets[tp] = held
                left += end - (held if held is not None else -1)
        log.info(
            "Read %d changelog records in bulk in %.1fs (%.0f/s); up to %d offsets left to replay",
            applied, seconds, applied / max(seconds, 1e-6), left,
        )  # fmt: skip


class TableManager(FaustTableManager):
    """Faust's table manager with `Recovery` above."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            app = self.app
            self._recovery = Recovery(
                app,
                self,
                beacon=self.beacon,
                loop=self.loop,
                settings=app.cwn_settings,
                on_restored=app.on_restored,
            )
        return self._recovery


class App(faust.App):
    """A Faust app whose worker consumer uses the settings' `fetch_wait_ms` and whose tables
    recover through `Recovery`, which tells `on_restored` how many records it read in bulk."""

    def __init__(
        self,
        *args: Any,
        settings: Settings,
        on_restored: Callable[[int], None] = lambda n: None,
        **kwargs: Any,
    ) -> None:
        self.cwn_settings, self.on_restored = settings, on_restored
        self.fetch_wait_ms = settings.fetch_wait_ms
        super().__init__(*args, TableManager=TableManager, **kwargs)

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
