"""Metric helpers: many observations at once read exactly as one by one; process metrics of
this process and of a child read from the real processes."""

import math
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipeline.metrics import observe_many, register_child_metrics, register_runtime_metrics

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


def test_runtime_metrics_describe_this_process():
    registry = CollectorRegistry()
    register_runtime_metrics(registry)
    samples = exposition(registry)
    assert samples["process_cpu_seconds_total"] > 0
    status = Path("/proc/self/status").read_text().splitlines()
    rss = int(next(line for line in status if line.startswith("VmRSS")).split()[1]) * 1024
    assert 0.5 * rss < samples["process_resident_memory_bytes"] < 2 * rss
    assert samples["process_open_fds"] > 0
    assert any(name.startswith("python_info") for name in samples)
    assert any(name.startswith("python_gc_collections_total") for name in samples)


def test_child_metrics_follow_the_pid_they_are_given():
    burn = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
        "print(1, flush=True)\ntime.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE)
    pid: int | None = None
    registry = CollectorRegistry()
    register_child_metrics(registry, "writer", lambda: pid)
    try:
        assert not any(name.startswith("cwn_writer_process") for name in exposition(registry))
        pid = child.pid
        assert child.stdout is not None and child.stdout.readline() == b"1\n"
        samples = exposition(registry)
        assert samples["cwn_writer_process_cpu_seconds_total"] >= 0.3
        assert samples["cwn_writer_process_resident_memory_bytes"] > 1024 * 1024
        assert samples["cwn_writer_process_open_fds"] > 0
        assert "process_cpu_seconds_total" not in samples  # this process's own are not implied
    finally:
        child.kill()
        child.wait()
    pid = None
    assert not any(name.startswith("cwn_writer_process") for name in exposition(registry))
