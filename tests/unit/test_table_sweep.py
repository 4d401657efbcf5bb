"""The Faust dedup table's sweep over a table stand-in holding the store's dict and recording
changelog writes (the sweep runs against a real Faust table in
tests/integration/test_dedup_expiry.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline.dedupe import Seen
from pipeline.table_sweep import TableSweep


class RecordingTable:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data
        self.changelog: list[tuple[int, bytes, Any]] = []

    def send_changelog(self, partition: int, key: bytes, value: Any, value_serializer: str) -> None:
        assert value_serializer == "raw"
        self.changelog.append((partition, key, value))


def stored(partition: int, last_us: int) -> bytes:
    return Seen(0, last_us, 1, (partition, 0)).to_bytes()


def over(value: bytes) -> bool:
    return Seen.from_bytes(value).last_us < 50


entries = st.dictionaries(
    st.binary(min_size=1, max_size=6), st.tuples(st.integers(0, 3), st.integers(0, 100)), max_size=60
)


keys = st.binary(min_size=1, max_size=6)


@given(entries, st.sets(st.integers(0, 3)), st.sets(keys, max_size=10), st.integers(1, 25))
def test_a_cycle_deletes_what_is_over_in_owned_partitions_and_nothing_else(
    state: dict[bytes, tuple[int, int]], owned: set[int], renewed: set[bytes], per_step: int
) -> None:
    table = RecordingTable({key: stored(p, last) for key, (p, last) in state.items()})
    sweep = TableSweep(table, lambda: list(table.data.items()), over, owned.__contains__, per_step)
    deleted = sweep.step()
    renewed &= set(state)
    for key in renewed:  # sighted again after the cycle began: its window goes on
        table.data[key] = stored(state[key][0], 99)
    deleted += sum(sweep.step() for _ in range(len(state) // per_step + 1))

    tombstones = {(p, key) for p, key, _ in table.changelog}
    assert deleted == len(table.changelog) == len(tombstones)
    assert all(value is None for _, _, value in table.changelog)
    for key, (p, last) in state.items():
        due = last < 50 and p in owned
        if key in renewed:
            assert key in table.data and ((p, key) not in tombstones or due)
        else:
            assert ((p, key) in tombstones) == due == (key not in table.data)


def test_a_step_looks_at_no_more_than_its_share_and_a_new_cycle_follows() -> None:
    table = RecordingTable({str(n).encode(): stored(0, 10) for n in range(10)})
    sweep = TableSweep(table, lambda: list(table.data.items()), over, lambda _: True, per_step=3)
    assert [sweep.step() for _ in range(4)] == [3, 3, 3, 1]
    table.data[b"late"] = stored(1, 10)
    assert sweep.step() == 1 and table.changelog[-1] == (1, b"late", None)


def test_a_cycle_broken_by_the_store_or_a_rebalance_starts_over() -> None:
    table = RecordingTable({str(n).encode(): stored(0, 10) for n in range(6)})
    cycles = 0

    def entries() -> Iterator[tuple[bytes, bytes]]:
        nonlocal cycles
        cycles += 1
        snapshot = list(table.data.items())
        yield from snapshot[:2]
        if cycles == 1:  # as a RocksDB store does when a partition's database opens meanwhile
            raise RuntimeError("dictionary changed size during iteration")
        yield from snapshot[2:]

    sweep = TableSweep(table, entries, over, lambda _: True, per_step=4)
    assert sweep.step() == 2 and cycles == 1
    assert sweep.step() == 4 and cycles == 2
    sweep.restart()
    table.data[b"late"] = stored(0, 10)
    assert sweep.step() == 1 and cycles == 3


def test_a_step_can_be_given_its_share() -> None:
    table = RecordingTable({str(n).encode(): stored(0, 10) for n in range(10)})
    sweep = TableSweep(table, lambda: list(table.data.items()), over, lambda _: True)
    assert [sweep.step(4), sweep.step(2), sweep.step(8)] == [4, 2, 4]
