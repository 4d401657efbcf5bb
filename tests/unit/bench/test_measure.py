import math
import os

from hypothesis import given
from hypothesis import strategies as st

from pipeline.bench.measure import Span, cpu_seconds, peak_rss_bytes, percentile

values = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=300)


@given(values, st.floats(min_value=0, max_value=100))
def test_percentile_is_a_member_and_splits_the_values(data, q):
    p = percentile(data, q)
    assert p in data
    below = sum(v <= p for v in data)
    assert below >= math.ceil(round(q / 100 * len(data), 9))
    assert sum(v < p for v in data) < max(1, math.ceil(round(q / 100 * len(data), 9)))


@given(values)
def test_percentile_extremes(data):
    assert percentile(data, 100) == max(data)
    assert percentile(data, 0) == min(data)


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile([], 50))


def test_nearest_rank_examples():
    data = list(range(1, 1001))
    assert percentile(data, 50) == 500
    assert percentile(data, 99) == 990
    assert percentile(data, 99.9) == 999


def test_span_never_divides_by_zero():
    assert Span(5.0, 5.0).seconds > 0
    assert Span(1.0, 3.5).seconds == 2.5


def test_own_process_figures():
    spent = cpu_seconds(os.getpid())
    sum(range(2_000_000))
    assert cpu_seconds(os.getpid()) >= spent
    assert peak_rss_bytes(os.getpid()) > 10 * 1024 * 1024
