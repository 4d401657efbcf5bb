import math

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.bench.produce import ProduceLoad, Sample, produce_requests, ratios, summarise

loads = st.builds(
    ProduceLoad,
    topics=st.integers(1, 300),
    burst=st.integers(1, 60),
    bursts_per_s=st.floats(1, 200),
    seconds=st.floats(0.1, 3),
    seed=st.integers(0, 1000),
)


@given(loads)
def test_each_burst_writes_distinct_topics_of_the_load(load):
    plan = load.plan()
    assert len(plan) == round(load.seconds * load.bursts_per_s)
    for burst in plan:
        assert len(burst) == min(load.burst, load.topics) == len(set(burst))
        assert all(0 <= index < load.topics for index in burst)
    assert load.plan() == plan  # the same schedule for every writer


def test_the_value_is_text_of_the_asked_size():
    value = ProduceLoad(value_bytes=480).value()
    assert len(value) == 480 and bytes.fromhex(value.decode())


def test_per_record_figures_and_ratios_to_the_one_topic_baseline():
    base = summarise(Sample(1000, 2.0, 0.04, 0.05, 25, [0.001] * 990 + [0.5] * 10))
    assert base == {
        "records": 1000, "records_per_s": 500.0, "client_cpu_us_per_record": 40.0,
        "broker_cpu_us_per_record": 50.0, "produce_requests_per_record": 0.025,
        "ack_p50_ms": 1.0, "ack_p99_ms": 1.0,
    }  # fmt: skip
    fanout = summarise(Sample(1000, 2.0, 0.2, 0.1, 900, [0.002] * 980 + [0.3] * 20))
    assert fanout["ack_p99_ms"] == 300.0
    other = summarise(Sample(1000, 2.0, 0.1, None, None, [0.002] * 1000))
    assert other["broker_cpu_us_per_record"] is None and other["produce_requests_per_record"] is None
    writers = {"confluent_one_topic": base, "confluent": fanout, "aiokafka": other}
    assert ratios(writers) == {
        "client_cpu_vs_one_topic": {"confluent": 5.0, "aiokafka": 2.5},
        "broker_cpu_vs_one_topic": {"confluent": 2.0, "aiokafka": None},
    }


def test_no_broker_figures_no_broker_ratio():
    base = summarise(Sample(10, 1.0, 0.001, None, 1, [0.001] * 10))
    assert set(ratios({"confluent_one_topic": base, "confluent": base})) == {"client_cpu_vs_one_topic"}


def test_no_acknowledgement_no_latency():
    assert math.isnan(summarise(Sample(0, 1.0, 0.0, None, 0, []))["ack_p50_ms"])


def test_produce_requests_are_summed_over_brokers():
    stats = {
        "name": "rdkafka#producer-1",
        "brokers": {
            "127.0.0.1:9092/1": {"req": {"Produce": 120, "Metadata": 3}},
            "127.0.0.1:9093/2": {"req": {"Produce": 5}},
            "GroupCoordinator": {"req": {}},
        },
    }
    assert produce_requests(orjson.dumps(stats)) == 125
    assert produce_requests("{}") == 0
