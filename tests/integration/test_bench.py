"""`cwn bench --json` end to end on the real broker: every figure present, counts balanced."""

from __future__ import annotations

import time

import orjson
import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition

from pipeline.bench import measure
from pipeline.bench.rebalance import _traced
from pipeline.kafka import ensure_topics, make_consumer, make_producer, read_topics
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, RAW, TopicSpec
from tests.integration.test_cli import cwn

pytestmark = pytest.mark.integration


def test_bench_reports_every_figure(settings: Settings) -> None:
    # One latency level and the shortest session timeout the broker allows: the same figures,
    # sooner (recovery waits out the session timeout).
    result = cwn(
        settings.model_copy(update={"namespace": "", "session_timeout_seconds": 6}),
        "bench", "--json", "--alerts", "1500", "--latency-seconds", "1", "--loads", "50", "--rates", "20",
        "--state-keys", "20000", "--recovery-keys", "20000", "--rebalance-seconds", "12",
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    report = orjson.loads(result.stdout)
    assert report["corpus"]["alerts"] == 1500 and report["corpus"]["members"] == 1152
    for baseline in ("raw_confluent", "raw_aiokafka", "faust_passthrough", "raw_fanout"):
        assert report[baseline] > 0
    pipeline = report["pipeline"]
    counts = pipeline["counts"]
    assert counts["lost"] == 0 and counts["ingested"] == 1500
    assert counts["duplicates"] == 300 and counts["unique"] == 1200
    assert pipeline["deliveries"] == counts["expected_deliveries"] > counts["unique"]
    assert pipeline["alerts_per_s"] > 0 and pipeline["cpu_seconds_per_1000_alerts"] > 0
    assert set(report["latency_ms"]) == {"50%", "20/s"}
    assert report["latency_ms"]["20/s"]["rate"] == 20.0
    for level in report["latency_ms"].values():
        assert level["deliveries"] > 0
        assert 0 < level["p50"] <= level["p99"] <= level["p99.9"]
        assert 0 < level["to_normalised_p50"] <= level["to_normalised_p99"]
        # An alert is complete at its last delivery: no sooner than its first hop.
        assert level["to_normalised_p50"] < level["complete_p50"] <= level["complete_p99"]
    assert report["peak_rss_bytes"]["pipeline_worker"] > 0
    moves = report["rebalance"]
    assert moves["lost_alerts"] == moves["lost_deliveries"] == 0 and moves["deliveries"] > 0
    assert moves["joined_at_s"] <= moves["joiner_ready_at_s"] <= moves["left_at_s"]
    assert moves["leaver_exit_code"] == 0, "the leaving worker stops cleanly on SIGTERM"
    assert 0 <= moves["leaver_stop_s"] < 60
    assert moves["rate"] == pytest.approx(pipeline["alerts_per_s"] / 2, abs=0.1)
    assert 0 < moves["p50"] <= moves["p99"] <= moves["p99.9"] <= moves["max"]
    assert report["dedup_state_bytes_per_1m_keys"] > 0
    recovery = report["recovery"]
    assert recovery["keys"] == 20000
    assert recovery["seconds_to_first_output"] > 0 and recovery["seconds_rebuilding_from_changelog"] > 0
    assert report["r_pipeline"] == pytest.approx(pipeline["alerts_per_s"] / report["raw_confluent"], abs=1e-3)
    assert report["r_framework"] == pytest.approx(
        report["faust_passthrough"] / report["raw_aiokafka"], abs=1e-3
    )
    assert report["r_fanout"] == pytest.approx(pipeline["deliveries_per_s"] / report["raw_fanout"], abs=1e-3)
    eos = report["pipeline_eos"]
    assert eos["counts"] == counts, "exactly once, the same corpus gives the same committed counts"
    assert eos["alerts_per_s"] > 0 and eos["cpu_seconds_per_1000_alerts"] > 0
    assert report["r_eos"] == pytest.approx(eos["alerts_per_s"] / pipeline["alerts_per_s"], abs=1e-3)
    assert set(eos["latency_ms"]) == {"50%", "20/s"}
    for level in eos["latency_ms"].values():
        assert level["deliveries"] > 0
        assert 0 < level["p50"] <= level["p99"] <= level["p99.9"]
    assert eos["peak_rss_bytes"] > 0
    assert eos["recovery"]["keys"] == 20000 and eos["recovery"]["seconds_rebuilding_from_changelog"] > 0
    assert report["r_pipeline_eos"] == pytest.approx(eos["alerts_per_s"] / report["raw_confluent"], abs=1e-3)


def test_produce_suite_counts_requests_per_record(settings: Settings) -> None:
    result = cwn(settings, "bench", "--suite", "produce", "--json", "--members", "60",
                 "--latency-seconds", "2", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    report = orjson.loads(result.stdout)
    assert report["load"]["topics"] == 60
    planned = round(report["load"]["seconds"] * report["load"]["bursts_per_s"]) * report["load"]["burst"]
    writers = report["writers"]
    assert set(writers) == {"confluent_one_topic", "confluent", "confluent_clients", "aiokafka"}
    for figures in writers.values():
        assert figures["records"] == planned  # every record acknowledged, each once
        assert figures["client_cpu_us_per_record"] > 0
        assert 0 < figures["ack_p50_ms"] <= figures["ack_p99_ms"]
    # The baseline lingers, so a burst to one topic travels in a request or two; over distinct
    # partitions librdkafka sends a request per partition, which is what the suite is there to show.
    one, spread = writers["confluent_one_topic"], writers["confluent"]
    assert 0 < one["produce_requests_per_record"] < 0.25 < spread["produce_requests_per_record"] <= 1.0
    # Over several clients each partition still has its own requests: the requests are
    # counted on every client, not on the first alone.
    assert 0.25 < writers["confluent_clients"]["produce_requests_per_record"] <= 1.0
    assert writers["aiokafka"]["produce_requests_per_record"] is None
    assert set(report["client_cpu_vs_one_topic"]) == {"confluent", "confluent_clients", "aiokafka"}


def test_timed_topics_are_stamped_by_the_broker(settings: Settings) -> None:
    topics = [settings.topic(f"cwn.deliver.stamped{i}") for i in range(3)]
    ensure_topics(settings, [TopicSpec(topic, 1) for topic in topics])
    measure.stamp_on_arrival(settings, topics)
    producer = make_producer(settings)
    for topic in topics:
        producer.produce(topic, b"v", timestamp=1_000)  # a producer's clock far in the past
    assert producer.flush(30) == 0
    written = read_topics(settings, topics)
    assert len(written) == len(topics)
    for message in written:
        kind, stamp = message.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert abs(stamp / 1000 - time.time()) < 60


def test_a_lost_alert_is_traced_to_the_raw_topic_and_the_groups_commit(settings: Settings) -> None:
    raw, dead = settings.topic(RAW), settings.topic(DEADLETTER)
    start = measure.end_offsets(settings, [raw, dead])
    producer = make_producer(settings)
    producer.produce(raw, b"...alert-one...", partition=1)
    producer.produce(dead, b"...alert-two...", partition=0)
    assert producer.flush(30) == 0
    group = make_consumer(settings, settings.group_id)
    group.commit(offsets=[TopicPartition(raw, 1, start[(raw, 1)] + 1)], asynchronous=False)
    group.close()
    assert _traced(settings, start, ["alert-one", "alert-two", "alert-three"]) == [
        {
            "alert_id": "alert-one",
            "raw": [1, start[(raw, 1)]],
            "committed_offset_of_its_partition": start[(raw, 1)] + 1,
        },
        {"alert_id": "alert-two", "dead_lettered": [0, start[(dead, 0)]]},
        {"alert_id": "alert-three"},
    ]
