"""The transactional loop's pure parts: offsets to commit and to read again, and the state's
pending changes (the loop itself runs against the broker in tests/integration/test_exactly_once.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.settings import Settings
from pipeline.transactional import ChangelogState, Polled, Sweep, first_offsets, next_offsets

positions = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3), st.integers(0, 10_000)), min_size=1, max_size=50
)


def batch(items: list[tuple[str, int, int]]) -> list[Polled]:
    return [Polled(topic, partition, offset, b"k", b"v", None) for topic, partition, offset in items]


@given(positions)
def test_next_offsets_are_one_past_the_last_record_of_each_partition(
    items: list[tuple[str, int, int]],
) -> None:
    got = {(tp.topic, tp.partition): tp.offset for tp in next_offsets(batch(items))}
    assert set(got) == {(t, p) for t, p, _ in items}
    for (topic, partition), offset in got.items():
        assert offset == max(o for t, p, o in items if (t, p) == (topic, partition)) + 1


@given(positions)
def test_first_offsets_are_where_each_partition_of_the_batch_starts(
    items: list[tuple[str, int, int]],
) -> None:
    got = {(tp.topic, tp.partition): tp.offset for tp in first_offsets(batch(items))}
    assert set(got) == {(t, p) for t, p, _ in items}
    for (topic, partition), offset in got.items():
        assert offset == min(o for t, p, o in items if (t, p) == (topic, partition))


def state_with(partitions: dict[int, dict[bytes, bytes]]) -> ChangelogState:
    state = ChangelogState(Settings(), "changelog")
    state._partitions.update({p: dict(table) for p, table in partitions.items()})
    return state


def test_pending_changes_are_seen_by_the_batch_and_kept_only_on_commit() -> None:
    state = state_with({0: {b"x": b"1"}, 1: {}})
    state.put(0, b"x", b"2")
    state.put(1, b"y", b"3")
    assert state.get(0, b"x") == b"2" and state.get(1, b"y") == b"3"
    assert sorted(state.changes()) == [(0, b"x", b"2"), (1, b"y", b"3")]
    state.abort()
    assert state.get(0, b"x") == b"1" and state.get(1, b"y") is None
    assert state.changes() == []
    state.put(1, b"y", b"4")
    state.commit()
    assert state.get(1, b"y") == b"4" and state.changes() == [] and len(state) == 2


@given(st.lists(st.tuples(st.integers(0, 2), st.binary(max_size=3), st.binary(min_size=1, max_size=3))))
def test_committed_state_is_the_last_value_put_per_key(puts: list[tuple[int, bytes, bytes]]) -> None:
    state = state_with({0: {}, 1: {}, 2: {}})
    for partition, key, value in puts:
        state.put(partition, key, value)
    state.commit()
    last = {(p, k): v for p, k, v in puts}
    assert len(state) == len(last)
    assert all(state.get(p, k) == v for (p, k), v in last.items())


def test_only_partitions_kept_stay() -> None:
    state = state_with({0: {b"a": b"1"}, 1: {b"b": b"2"}, 2: {}})
    state.keep_only([1, 3])
    assert state.partitions == {1} and len(state) == 1


def test_a_deletion_is_pending_until_commit_and_goes_out_as_a_tombstone() -> None:
    state = state_with({0: {b"x": b"1", b"y": b"2"}})
    state.delete(0, b"x")
    assert state.get(0, b"x") is None and state.changes() == [(0, b"x", None)]
    state.abort()
    assert state.get(0, b"x") == b"1"
    state.delete(0, b"x")
    state.commit()
    assert state.get(0, b"x") is None and len(state) == 1


@given(
    st.dictionaries(
        st.tuples(st.integers(0, 3), st.binary(min_size=1, max_size=4)), st.integers(0, 100), max_size=80
    ),
    st.integers(1, 7),
    st.sets(st.tuples(st.integers(0, 3), st.binary(min_size=1, max_size=4)), max_size=10),
)
def test_sweeping_deletes_exactly_the_expired_entries_left_alone_by_the_batch(
    entries: dict[tuple[int, bytes], int], per_step: int, touched: set[tuple[int, bytes]]
) -> None:
    tables: dict[int, dict[bytes, bytes]] = {p: {} for p in range(4)}
    for (partition, key), age in entries.items():
        tables[partition][key] = str(age).encode()
    state = state_with(tables)
    for partition, key in touched:
        state.put(partition, key, b"0")
    sweep = Sweep(state, lambda value: int(value) >= 50, per_step)
    steps = sum(-(-len(t) // per_step) for t in tables.values()) + 4
    deleted = sum(sweep.step() for _ in range(steps))
    expired = {k for k, age in entries.items() if age >= 50 and k not in touched}
    assert deleted == len(expired)
    assert {(p, k) for p, k, v in state.changes() if v is None} == expired
    state.commit()
    assert all(state.get(p, k) is None for p, k in expired)
    assert all(state.get(p, k) is not None for p, k in set(entries) - expired)


def test_a_sweep_step_looks_at_no_more_than_its_share() -> None:
    state = state_with({0: {str(n).encode(): b"old" for n in range(10)}})
    sweep = Sweep(state, lambda value: value == b"old", per_step=3)
    assert [sweep.step() for _ in range(5)] == [3, 3, 3, 1, 0]
