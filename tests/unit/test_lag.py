from hypothesis import given
from hypothesis import strategies as st

from pipeline.lag import Progress, lag


def test_lag_counts_from_the_commit_or_from_what_is_retained():
    assert lag(committed=4, low=0, high=10) == 6
    assert lag(committed=-1001, low=3, high=10) == 7
    assert lag(committed=2, low=5, high=10) == 5
    assert lag(committed=10, low=0, high=10) == 0


@given(st.integers(-1001, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_lag_is_never_negative_nor_more_than_retained(committed, low, high):
    low, high = min(low, high), max(low, high)
    assert 0 <= lag(committed, low, high) <= high - low


P, Q = ("t", 0), ("t", 1)


def test_progress_finds_a_held_partition_whose_commit_stands_behind_waiting_records():
    progress = Progress(limit=60, gap=30)
    assert progress.observe(0, {P: (5, 10), Q: (7, 10)}, {P, Q}) == {}
    assert progress.observe(20, {P: (5, 12), Q: (9, 10)}, {P, Q}) == {}  # Q's commit moved
    assert progress.observe(40, {P: (5, 12), Q: (9, 10)}, {P, Q}) == {}
    assert progress.observe(60, {P: (5, 14), Q: (9, 10)}, {P, Q}) == {P: 60}
    assert progress.observe(80, {P: (5, 14), Q: (9, 10)}, {P, Q}) == {P: 80, Q: 60}
    assert progress.observe(81, {P: (5, 14), Q: (9, 10)}, {Q}) == {Q: 61}  # P no longer held


def test_progress_ignores_a_lag_of_one_and_restarts_after_a_gap():
    progress = Progress(limit=60, gap=30)
    for now in range(0, 200, 10):
        assert progress.observe(now, {P: (5, 1)}, {P}) == {}  # a trailing commit marker
    assert progress.observe(200, {P: (5, 2)}, {P}) == {}
    assert progress.observe(250, {P: (5, 2)}, {P}) == {}  # 50 s unwatched: the clock restarts
    assert progress.observe(280, {P: (5, 2)}, {P}) == {}
    assert progress.observe(310, {P: (5, 2)}, {P}) == {P: 60}
    assert progress.observe(311, {}, {P}) == {}  # not measured: not judged


@given(
    st.lists(
        st.tuples(st.integers(0, 45), st.integers(0, 3), st.integers(0, 50), st.booleans()), max_size=60
    ),
    st.integers(1, 100),
)
def test_progress_names_only_partitions_held_waiting_and_unmoved_for_the_limit(steps, limit):
    """Against a plain model: a reported partition is held, more than one record behind, and
    its commit has not moved in observations, none further apart than the gap, covering
    at least `limit` seconds."""
    progress, now, history = Progress(limit=limit, gap=30), 0, []
    for step, (dt, committed, behind, held) in enumerate(steps):
        now += dt
        history.append((now, committed, behind, held))
        stalled = progress.observe(now, {P: (committed, behind)}, {P} if held else set())
        run = []
        for then, c, b, h in reversed(history):
            if not h or b <= 1 or c != committed or (run and run[-1][0] - then > 30):
                break
            run.append((then, c))
        expected = {P: now - run[-1][0]} if run and now - run[-1][0] >= limit else {}
        assert stalled == expected, (step, history)
