"""The consumer's commit guard (Faust's own offset arithmetic, with records still in flight), its
delivery of each partition in offset order, and its service on the worker's own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from intervaltree import Interval, IntervalTree

from pipeline import faust_transport
from pipeline.faust_transport import (
    Consumer,
    ConsumerThread,
    OnTheLoop,
    Place,
    call_here,
    place,
    safe_to_commit,
)
from pipeline.settings import Settings

P0, P1 = TP("cwn.alerts.raw", 0), TP("cwn.alerts.raw", 1)


@dataclass
class Message:
    tp: TP
    offset: int
    acked: bool = False


def consumer(committed: dict[TP, int | None], acked: dict[TP, list[int]], unacked: list[Message]) -> Consumer:
    """A consumer holding just the bookkeeping Faust's commit arithmetic reads."""
    c = object.__new__(Consumer)
    c._acked = defaultdict(list, {tp: sorted(offsets) for tp, offsets in acked.items()})
    c._acked_index = defaultdict(set, {tp: set(offsets) for tp, offsets in acked.items()})
    c._gap = defaultdict(IntervalTree)
    c._committed_offset = defaultdict(lambda: None, committed)
    c._unacked_messages = unacked
    c._based = frozenset([*committed, *acked])  # read back from the broker since assigned
    c._read_offset = defaultdict(lambda: None, committed)
    c._next, c._jumps, c._held = {}, {}, {}
    return c


def test_a_record_in_flight_below_the_acknowledged_ones_holds_its_partition_back():
    in_flight = Message(P0, 100)
    acked = {P0: [101, 102], P1: [7, 8]}
    # Faust alone commits P0 to 103 here, past offset 100, whose output is not written yet.
    c = consumer({P0: 100, P1: 7}, acked, [in_flight, Message(P0, 101, acked=True)])
    assert c._filter_committable_offsets([P0, P1]) == {P1: 9}
    in_flight.acked = True
    c._acked[P0].insert(0, 100)
    c._acked_index[P0].add(100)
    assert c._filter_committable_offsets([P0]) == {P0: 103}


def test_without_a_commit_yet_faust_would_commit_past_any_number_in_flight():
    c = consumer({}, {P0: [5, 6]}, [Message(P0, 0), Message(P0, 3)])
    assert c._filter_committable_offsets([P0]) == {}
    assert consumer({}, {P0: [5, 6]}, [])._filter_committable_offsets([P0]) == {P0: 7}


@given(
    st.lists(st.integers(0, 40), unique=True, max_size=20),
    st.lists(st.integers(0, 40), max_size=10),
    st.lists(st.integers(0, 40), max_size=5),
)
def test_a_partition_is_committable_only_if_nothing_in_flight_lies_below_its_acknowledged_offsets(
    acked: list[int], in_flight: list[int], other: list[int]
):
    messages = [Message(P0, o) for o in in_flight] + [Message(P1, o) for o in other]
    messages += [Message(P0, o, acked=True) for o in acked]
    safe = safe_to_commit([P0, P1], {P0: acked}, messages)
    assert P1 in safe  # nothing acknowledged on P1: nothing of it can be committed anyway
    assert (P0 in safe) == (not acked or not in_flight or min(acked) <= min(in_flight))


def test_a_late_acknowledgement_waits_for_the_group_commit_to_be_read_back(monkeypatch):
    # Committed 4385; a rebalance gives the partition back to this worker, and Faust forgets
    # its commit and acknowledgements. A batch read before it (offset 4406) is acknowledged
    # before the worker seeks back to the group's commit.
    c = consumer({}, {P0: [4406]}, [])
    c._based = frozenset()
    assert driver.Consumer._filter_committable_offsets(c, [P0]) == {P0: 4407}  # Faust alone
    assert c._filter_committable_offsets([P0]) == {}
    # The seek reads 4385 back: Faust's own check now holds the partition until the offsets
    # from 4385 on are read and acknowledged again.
    monkeypatch.setattr(c, "assignment", lambda: {P0}, raising=False)

    async def sought(self):
        self._committed_offset[P0] = 4385

    monkeypatch.setattr(driver.Consumer, "perform_seek", sought)
    asyncio.run(c.perform_seek())
    assert c._based == {P0}
    assert c._filter_committable_offsets([P0]) == {}
    c._acked[P0] = list(range(4385, 4407))
    c._acked_index[P0] = set(range(4385, 4407))
    assert c._filter_committable_offsets([P0]) == {P0: 4407}


def test_a_revoked_partition_is_not_committed_until_it_is_read_back(monkeypatch):
    c = consumer({P0: 10, P1: 20}, {P0: [10, 11], P1: [20]}, [])

    async def revoked(self, tps):
        for tp in tps:
            self._committed_offset.pop(tp, None)

    monkeypatch.setattr(driver.Consumer, "on_partitions_revoked", revoked)
    asyncio.run(c.on_partitions_revoked({P1}))
    assert c._filter_committable_offsets([P0, P1]) == {P0: 12}


# -- Delivery in offset order ------------------------------------------------------------------


@dataclass
class Record:
    """What `Consumer.getmany` reads of a Faust message."""

    tp: TP
    offset: int


class Acking:
    def __init__(self, topics: set[str]) -> None:
        self.topics = topics

    def acks_enabled_for(self, topic: str) -> bool:
        return topic in self.topics


@dataclass
class App:
    topics: Acking


class Log:
    """One partition's log (`offsets`, with holes), read from `position` by fetches of `size`
    records, with the `stale` runs of records (fetched from another position) handed out first,
    one per fetch, wherever they fall."""

    def __init__(self, offsets: list[int], stale: list[list[int]], size: int) -> None:
        self.offsets, self.stale, self.size = offsets, list(stale), size
        self.position = 0
        self.seeks: list[int] = []

    def fetch(self) -> list[int]:
        if self.stale:
            return self.stale.pop(0)
        batch = [o for o in self.offsets if o >= self.position][: self.size]
        if batch:
            self.position = batch[-1] + 1
        return batch

    def seek(self, offset: int) -> None:
        self.seeks.append(offset)
        self.position = offset


def reading(log: Log, start: int | None, topics: set[str] = {"cwn.alerts.raw"}) -> Consumer:  # noqa: B006
    """A consumer reading P0 from `log`, sought to `start` (None: no commit to seek to)."""
    c = object.__new__(Consumer)
    c.app = App(Acking(topics))
    c._gap = defaultdict(IntervalTree)
    c._committed_offset = defaultdict(lambda: None, {} if start is None else {P0: start})
    c._read_offset = defaultdict(lambda: None)
    c._next = {} if start is None else {P0: start}
    c._jumps, c._held = {}, {}
    c._based = frozenset([P0])  # sought since assigned
    if start is not None:
        log.seek(start)

    async def seek_wait(offsets: dict[TP, int]) -> None:
        log.seek(offsets[P0])

    c.seek_wait = seek_wait  # type: ignore[method-assign]
    return c


def delivered(c: Consumer, log: Log, fetches: int, monkeypatch: Any) -> list[int]:
    """The offsets `c.getmany` hands on over `fetches` fetches, checking Faust's read offset."""

    async def fetched(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Record]]:
        for offset in log.fetch():
            yield P0, Record(P0, offset)

    monkeypatch.setattr(driver.Consumer, "getmany", fetched)

    async def run() -> list[int]:
        out = []
        for _ in range(fetches):
            async for tp, message in c.getmany(0.0):
                if c.app.topics.acks_enabled_for(tp.topic):  # Faust's reader neither drops nor fills
                    assert c._read_offset[tp] == message.offset
                out.append(message.offset)
        return out

    return asyncio.run(run())


def test_each_place_against_the_expected_offset():
    assert place(None, None, 7) is Place.NEXT
    assert place(7, None, 7) is Place.NEXT
    assert place(7, None, 3) is Place.SEEN
    assert place(7, None, 9) is Place.JUMP
    assert place(7, (7, 8), 9) is Place.JUMP
    assert place(7, (7, 9), 9) is Place.HOLE
    assert place(8, (7, 9), 9) is Place.JUMP


def test_records_from_before_a_seek_are_read_again_from_the_sought_offset(monkeypatch):
    # Seen in the rebalance phase: sought to 443, the first record read was 447, and Faust
    # counted 444-446 as done and dropped the re-read from 443.
    log = Log(list(range(430, 530)), stale=[list(range(447, 520))], size=200)
    c = reading(log, 443)
    assert delivered(c, log, 3, monkeypatch) == list(range(443, 530))
    assert log.seeks == [443, 443]
    assert not c._gap[P0]


def test_a_hole_in_the_log_is_taken_once_the_same_jump_is_read_twice(monkeypatch):
    log = Log([*range(0, 10), *range(13, 20)], stale=[], size=5)
    c = reading(log, 8)
    assert delivered(c, log, 5, monkeypatch) == [8, 9, *range(13, 20)]
    assert log.seeks == [8, 10]
    assert sorted(c._gap[P0]) == [Interval(10, 13)]  # Faust's own bookkeeping: acknowledged


def test_topics_without_acknowledgements_pass_untouched(monkeypatch):
    log = Log(list(range(0, 10)), stale=[[7, 8]], size=20)
    c = reading(log, 3, topics=set())
    assert delivered(c, log, 2, monkeypatch) == [7, 8, *range(3, 10)]
    assert log.seeks == [3]


@given(
    st.sets(st.integers(0, 80), min_size=1).map(sorted),
    st.integers(0, 80),
    st.lists(st.tuples(st.integers(0, 80), st.integers(1, 10)), max_size=4),
    st.integers(1, 12),
)
def test_whatever_stale_runs_arrive_the_log_is_delivered_once_in_order(
    offsets: list[int], start: int, runs: list[tuple[int, int]], size: int
):
    # Stale runs are records of the log from anywhere; two of them starting at the same
    # offset would repeat a jump, which is what confirms a hole, so they start apart.
    stale = {}
    for first, length in runs:
        run = [o for o in offsets if o >= first][:length]
        if run:
            stale.setdefault(run[0], run)
    log = Log(offsets, list(stale.values()), size)
    c = reading(log, start)
    with pytest.MonkeyPatch.context() as mp:
        got = delivered(c, log, 3 * len(offsets) + 2 * len(runs) + 4, mp)
    assert got == [o for o in offsets if o >= start]
    filled = {o for interval in c._gap[P0] for o in range(interval.begin, interval.end)}
    assert not filled & set(offsets)  # only offsets with no record are counted as done


def test_a_seek_sets_where_each_partition_goes_on_and_a_revoke_forgets_it(monkeypatch):
    c = consumer({}, {}, [])
    c._jumps = {P0: (3, 9)}
    monkeypatch.setattr(c, "assignment", lambda: {P0, P1}, raising=False)

    async def sought(self):  # Faust's seek: the read offset is the commit, None without one
        self._read_offset.update({P0: 120, P1: None})

    monkeypatch.setattr(driver.Consumer, "perform_seek", sought)
    asyncio.run(c.perform_seek())
    assert c._next == {P0: 120} and c._jumps == {}

    async def revoked(self, tps):
        pass

    monkeypatch.setattr(driver.Consumer, "on_partitions_revoked", revoked)
    c._jumps, c._held = {P0: (120, 125)}, {P0: 130}
    asyncio.run(c.on_partitions_revoked({P0}))
    assert c._next == {} and c._jumps == {} and c._held == {}


def test_nothing_is_delivered_before_the_seek_of_an_assignment(monkeypatch):
    # Faust resumes the flow before it seeks when a rebalance needs no table recovery.
    log = Log(list(range(0, 30)), stale=[], size=10)
    log.position = 17  # wherever the client stood
    c = reading(log, None)
    c._based = frozenset()
    assert delivered(c, log, 1, monkeypatch) == []
    monkeypatch.setattr(c, "assignment", lambda: {P0}, raising=False)

    async def sought(self):
        log.seek(12)
        self._read_offset[P0] = 12

    monkeypatch.setattr(driver.Consumer, "perform_seek", sought)
    asyncio.run(c.perform_seek())
    assert delivered(c, log, 3, monkeypatch) == list(range(12, 30))


def test_a_commit_begins_at_the_commit_unless_a_hole_was_read_there():
    # Faust lets the acknowledged run begin one past the commit (for a transaction marker).
    assert driver.Consumer._new_offset(consumer({P0: 100}, {P0: [101, 102]}, []), P0) == 103  # Faust alone
    c = consumer({P0: 100}, {P0: [101, 102]}, [])
    assert c._filter_committable_offsets([P0]) == {}
    c._gap[P0].addi(100, 101)  # `getmany` read the same jump twice: no record at 100
    assert c._filter_committable_offsets([P0]) == {P0: 103}


def test_a_hole_confirmed_by_reading_lets_the_partition_commit(monkeypatch):
    log = Log([*range(0, 10), *range(13, 20)], stale=[], size=5)
    c = reading(log, 10)
    c._acked, c._acked_index = defaultdict(list), defaultdict(set)
    c._unacked_messages = []
    assert delivered(c, log, 3, monkeypatch) == list(range(13, 20))
    c._acked[P0], c._acked_index[P0] = list(range(13, 20)), set(range(13, 20))
    assert c._filter_committable_offsets([P0]) == {P0: 20}


def test_bookkeeping_names_what_decides_each_partitions_delivery_and_commits(monkeypatch):
    c = consumer({P0: 100}, {P0: [102, 103]}, [Message(P0, 101), Message(P0, 99, acked=True)])
    c.app = App(Acking({"cwn.alerts.raw"}))
    c._next, c._jumps = {P0: 104}, {P0: (104, 110)}
    c._gap[P0].addi(120, 125)
    other = TP("cwn-pipeline-dedupe-changelog", 0)
    monkeypatch.setattr(c, "assignment", lambda: {P0, other}, raising=False)
    assert c.bookkeeping() == {
        P0: {
            "sought": True,
            "committed": 100,
            "next": 104,
            "jump": (104, 110),
            "lowest_acked": 102,
            "lowest_hole": 120,
            "lowest_in_flight": 101,
        }
    }


def test_records_held_back_while_the_seek_runs_are_read_again_after_it(monkeypatch):
    # Seen in the bench: the client sought raw[1] to 589, the last six records were read
    # before Faust's seek returned, and with nothing produced after them nothing came again.
    log = Log(list(range(0, 595)), stale=[], size=50)
    log.position = 589  # the client's own seek has already run
    c = reading(log, None)
    c._based = frozenset()
    assert delivered(c, log, 1, monkeypatch) == []
    assert c._held == {P0: 589}
    monkeypatch.setattr(c, "assignment", lambda: {P0}, raising=False)

    async def sought(self):
        self._read_offset[P0] = 589  # the commit; the client moved on past it meanwhile

    monkeypatch.setattr(driver.Consumer, "perform_seek", sought)
    asyncio.run(c.perform_seek())
    assert delivered(c, log, 2, monkeypatch) == list(range(589, 595))
    assert c._held == {}


def test_without_a_commit_held_records_are_read_again_from_the_lowest(monkeypatch):
    log = Log(list(range(0, 10)), stale=[], size=4)
    c = reading(log, None)
    c._based = frozenset()
    assert delivered(c, log, 1, monkeypatch) == []  # 0-3 held back
    monkeypatch.setattr(c, "assignment", lambda: {P0}, raising=False)

    async def sought(self):  # no commit: Faust's read offset stays unset
        pass

    monkeypatch.setattr(driver.Consumer, "perform_seek", sought)
    asyncio.run(c.perform_seek())
    assert delivered(c, log, 4, monkeypatch) == list(range(0, 10))


def test_a_jump_on_a_partition_the_client_just_gave_up_is_left_to_its_next_assignment(monkeypatch):
    log = Log(list(range(0, 20)), stale=[[15, 16]], size=20)
    c = reading(log, 10)

    async def unassigned(offsets: dict[TP, int]) -> None:
        raise IllegalStateError(f"No current assignment for partition {P0}")

    c.seek_wait = unassigned  # type: ignore[method-assign]
    assert delivered(c, log, 1, monkeypatch) == []  # the jump is read, the seek refused: no crash
    assert c._next == {P0: 10} and c._jumps == {P0: (10, 15)}


def test_calls_into_the_consumer_are_awaited_in_the_callers_own_task():
    async def run() -> None:
        caller = asyncio.current_task(), threading.get_ident()

        async def fetch(n: int) -> tuple[int, Any, int]:
            return n, asyncio.current_task(), threading.get_ident()

        n, task, thread = await call_here(fetch, 3)
        assert (n, (task, thread)) == (3, caller)
        assert await call_here(lambda position: position + 1, 41) == 42  # a plain method's value

    asyncio.run(run())


def test_the_consumer_service_runs_as_a_task_of_the_running_loop():
    async def run() -> None:
        served: list[tuple[int, asyncio.AbstractEventLoop]] = []
        release = asyncio.Event()

        class Service:
            async def _serve(self) -> None:
                served.append((threading.get_ident(), asyncio.get_running_loop()))
                await release.wait()

        runner = OnTheLoop(Service())
        assert not runner.is_alive()
        runner.start()
        await asyncio.sleep(0)
        assert served == [(threading.get_ident(), asyncio.get_running_loop())]
        assert runner.is_alive()
        release.set()
        await asyncio.wait_for(runner.task, 1)  # type: ignore[arg-type]
        assert not runner.is_alive()

    asyncio.run(run())


def test_the_workers_consumer_shares_the_apps_event_loop():
    async def run() -> None:
        app = faust_transport.App(
            "cwn-test", settings=Settings(bootstrap="127.0.0.1:1"), broker="kafka://127.0.0.1:1"
        )
        service = app.consumer._thread
        assert isinstance(service, ConsumerThread)
        assert service.thread_loop is service.parent_loop is asyncio.get_running_loop()
        assert service.Worker is OnTheLoop

    asyncio.run(run())
