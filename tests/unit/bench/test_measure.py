import math
import os
import subprocess
import sys
import time

from hypothesis import given
from hypothesis import strategies as st

from pipeline.bench.measure import Span, completion_ms, cpu_seconds, peak_rss_bytes, percentile, process_tree

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


alert_ids = st.sampled_from([f"a{n}" for n in range(8)])


@given(
    st.dictionaries(alert_ids, st.floats(min_value=0, max_value=1e4), max_size=6),
    st.lists(st.tuples(alert_ids, st.floats(min_value=0, max_value=2e4)), max_size=60),
)
def test_completion_is_each_sent_alerts_last_delivery(sent, deliveries):
    arrivals = [(alert_id.encode(), stamp) for alert_id, stamp in deliveries]
    complete = completion_ms(arrivals, sent)
    last: dict[str, float] = {}
    for alert_id, stamp in deliveries:
        if alert_id in sent:
            last[alert_id] = max(stamp, last.get(alert_id, stamp))
    assert sorted(complete) == sorted((stamp - sent[alert_id]) * 1000 for alert_id, stamp in last.items())


def test_completion_counts_an_alert_once_at_its_slowest_member():
    sent = {"wide": 10.0, "narrow": 10.5, "duplicate": 11.0}
    arrivals = [(b"wide", 10.02), (b"narrow", 10.51), (b"wide", 10.09), (b"wide", 10.05), (b"other", 12.0)]
    assert sorted(round(ms, 6) for ms in completion_ms(arrivals, sent)) == [10.0, 90.0]


def test_span_never_divides_by_zero():
    assert Span(5.0, 5.0).seconds > 0
    assert Span(1.0, 3.5).seconds == 2.5


def test_own_process_figures():
    spent = cpu_seconds(os.getpid())
    sum(range(2_000_000))
    assert cpu_seconds(os.getpid()) >= spent
    assert peak_rss_bytes(os.getpid()) > 10 * 1024 * 1024


def test_a_process_is_measured_with_its_descendants():
    """A worker's writer process is its child: its CPU and memory count as the worker's."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\ntime.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        before = cpu_seconds(os.getpid())
        deadline = time.monotonic() + 30
        while cpu_seconds(os.getpid()) - before < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in process_tree(os.getpid())
        assert cpu_seconds(os.getpid()) - before >= 0.3, "the child's CPU is not counted"
        assert peak_rss_bytes(os.getpid()) > peak_rss_bytes(child.pid) > 0
    finally:
        child.kill()
        child.wait()
    assert child.pid not in process_tree(os.getpid())
