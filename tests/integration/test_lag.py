"""Consumer lag measured from the real broker."""

import queue
import time

from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from pipeline.kafka import client_config, make_producer
from pipeline.lag import LagMonitor, Progress
from pipeline.topics import RAW


def group_behind(settings) -> tuple[str, str, Consumer]:
    """Ten records on each of the raw topic's three partitions, and the pipeline's group
    committed at 4 on partition 0, at the end of partition 1, nowhere on partition 2; with the
    group's consumer that committed, open for more."""
    topic = settings.topic(RAW)
    producer = make_producer(settings)
    for n in range(30):
        producer.produce(topic, b"x", partition=n % 3)
    assert producer.flush(30) == 0
    group = settings.group_id
    committer = Consumer(client_config(settings) | {"group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 10)], asynchronous=False)
    return topic, group, committer


def test_lag_is_what_the_group_has_not_committed(settings):
    topic, group, committer = group_behind(settings)
    committer.close()
    registry = CollectorRegistry()
    gauge = Gauge("cwn_consumer_lag_records", "lag", ["group", "topic", "partition"], registry=registry)
    monitor = LagMonitor(settings, group, lambda: [topic, settings.topic("cwn.no.such.topic")], gauge)
    reader = Consumer(client_config(settings) | {"group.id": group})
    try:
        measured = monitor.measure(reader)
    finally:
        reader.close()
    assert measured == {(topic, 0): (4, 6), (topic, 1): (10, 0), (topic, 2): (OFFSET_INVALID, 10)}
    assert (
        registry.get_sample_value(
            "cwn_consumer_lag_records", {"group": group, "topic": topic, "partition": "0"}
        )
        == 6
    )


def test_a_held_partition_with_records_waiting_and_no_commit_is_found_stalled(settings):
    """The monitor's measurements, fed to `Progress` as the worker does: the partition whose
    commit stands still behind waiting records is found, the caught-up one and the one not held
    are not, and a commit starts the clock again."""
    topic, group, committer = group_behind(settings)
    gauge = Gauge(
        "cwn_consumer_lag_records", "lag", ["group", "topic", "partition"], registry=CollectorRegistry()
    )
    progress = Progress(limit=1.5, gap=30)
    results: queue.Queue = queue.Queue()
    held = {(topic, 0), (topic, 1)}

    def watch() -> LagMonitor:
        monitor = LagMonitor(settings, group, lambda: [topic], gauge, interval=0.2)
        monitor.on_measure = lambda measured: results.put(progress.observe(time.monotonic(), measured, held))
        return monitor.start()

    def next_stalled() -> dict:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if stalled := results.get(timeout=30):
                return stalled
        raise AssertionError("no stalled partition found")

    monitor = watch()
    try:
        stalled = next_stalled()
        assert set(stalled) == {(topic, 0)} and stalled[(topic, 0)] >= 1.5
        monitor.stop()  # so that every measurement from here on follows the commit
        committer.commit(offsets=[TopicPartition(topic, 0, 6)], asynchronous=False)
        committed_at = time.monotonic()
        monitor = watch()
        stalled = next_stalled()
        assert set(stalled) == {(topic, 0)}
        assert stalled[(topic, 0)] <= time.monotonic() - committed_at, "the commit started its clock again"
    finally:
        monitor.stop()
        committer.close()
