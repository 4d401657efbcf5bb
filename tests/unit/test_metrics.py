"""Metric helpers: many observations at once read exactly as one by one."""

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipeline.metrics import observe_many

BUCKETS = (0.005, 0.01, 0.1, 1, 10)


def exposition(registry: CollectorRegistry) -> dict[str, float]:
    samples = {}
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#") and "_created" not in line:
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@given(
    st.lists(
        st.tuples(
            st.floats(0, 100, allow_nan=False) | st.sampled_from(BUCKETS),
            st.integers(0, 50),
        ),
        max_size=20,
    )
)
def test_observe_many_reads_as_repeated_observe(observations):
    one, many = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("latency", "", buckets=BUCKETS, registry=one)
    at_once = Histogram("latency", "", buckets=BUCKETS, registry=many)
    for value, count in observations:
        for _ in range(count):
            by_one.observe(value)
        observe_many(at_once, value, count)
    expected, got = exposition(one), exposition(many)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        # Buckets and count exactly; the sum up to rounding (one product against many sums).
        assert (
            got[name] == value if not name.endswith("_sum") else math.isclose(got[name], value, rel_tol=1e-9)
        )
