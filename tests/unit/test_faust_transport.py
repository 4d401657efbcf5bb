"""The consumer's commit guard: Faust's own offset arithmetic, with records still in flight."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from intervaltree import IntervalTree

from pipeline.faust_transport import Consumer, safe_to_commit

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
