from hypothesis import given
from hypothesis import strategies as st

from pipeline.lag import lag


def test_lag_counts_from_the_commit_or_from_what_is_retained():
    assert lag(committed=4, low=0, high=10) == 6
    assert lag(committed=-1001, low=3, high=10) == 7
    assert lag(committed=2, low=5, high=10) == 5
    assert lag(committed=10, low=0, high=10) == 0


@given(st.integers(-1001, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_lag_is_never_negative_nor_more_than_retained(committed, low, high):
    low, high = min(low, high), max(low, high)
    assert 0 <= lag(committed, low, high) <= high - low
