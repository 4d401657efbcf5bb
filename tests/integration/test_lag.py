"""Consumer lag measured from the real broker."""

import queue
import time

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from pipeline.directory import Directory, generate_members
from pipeline.kafka import client_config, ensure_topics, make_producer
from pipeline.lag import LagMonitor, Progress
from pipeline.topics import RAW, TopicSpec, partner_raw_topic, partner_topic_specs, partner_topics_prefix


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


_LOADING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def measure_once_ready(monitor: LagMonitor, reader: Consumer) -> dict:
    """A measurement, retried while the group's coordinator is still loading on a new broker
    (the worker's own monitor skips such a measurement and takes the next)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return monitor.measure(reader)
        except KafkaException as exc:
            if exc.args[0].code() not in _LOADING or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_lag_is_what_the_group_has_not_committed(settings):
    topic, group, committer = group_behind(settings)
    committer.close()
    registry = CollectorRegistry()
    gauge = Gauge("cwn_consumer_lag_records", "lag", ["group", "topic", "partition"], registry=registry)
    monitor = LagMonitor(settings, group, lambda: [topic, settings.topic("cwn.no.such.topic")], gauge)
    reader = Consumer(client_config(settings) | {"group.id": group})
    try:
        measured = measure_once_ready(monitor, reader)
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


def test_topics_under_a_prefix_are_measured_as_they_appear(settings):
    prefix = partner_topics_prefix(settings)
    early, late = prefix + "early", prefix + "late"
    ensure_topics(settings, [TopicSpec(early, 1)])
    producer = make_producer(settings)
    for _ in range(3):
        producer.produce(early, b"x")
    assert producer.flush(30) == 0
    gauge = Gauge(
        "cwn_consumer_lag_records", "lag", ["group", "topic", "partition"], registry=CollectorRegistry()
    )
    monitor = LagMonitor(settings, settings.group_id, list, gauge, prefixes=(prefix,))
    reader = Consumer(client_config(settings) | {"group.id": settings.group_id})
    try:
        first = measure_once_ready(monitor, reader)
        ensure_topics(settings, [TopicSpec(late, 2)])
        for _ in range(2):
            producer.produce(late, b"x", partition=0)
        assert producer.flush(30) == 0
        second = monitor.measure(reader)
    finally:
        reader.close()
    assert first == {(early, 0): (OFFSET_INVALID, 3)}
    assert second == first | {(late, 0): (OFFSET_INVALID, 2), (late, 1): (OFFSET_INVALID, 0)}


def test_a_worker_counts_and_names_a_producer_topic_made_after_it_started(pipeline, settings):
    pipeline.import_members(Directory(generate_members(5)))
    worker = pipeline.start_worker(restart_for_new_topics=False)
    assert worker.scrape()["cwn_unread_producer_topics"] == 0
    topic = partner_raw_topic(settings, "late-partner")
    ensure_topics(settings, partner_topic_specs(settings, ["late-partner"]))
    producer = make_producer(settings)
    producer.produce(topic, b"an alert nobody reads yet", partition=0)
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 60
    while True:
        samples = worker.scrape()
        if samples["cwn_unread_producer_topics"] == 1 and samples.get(lag_key(settings, topic)) == 1:
            break
        assert time.monotonic() < deadline, f"the new producer topic was not counted: {worker.log_path}"
        time.sleep(1)
    assert f"Records on {topic} are not read by this worker" in worker.log_path.read_text()
    # A restart reads it: the worker subscribes to every producer topic it finds at start.
    worker.stop()
    wait_read(pipeline.start_worker("w1", restart_for_new_topics=False), settings, topic)


def test_a_worker_stops_for_a_producer_topic_made_after_it_started_and_its_restart_reads_it(
    pipeline, settings
):
    pipeline.import_members(Directory(generate_members(5)))
    worker = pipeline.start_worker()
    topic = partner_raw_topic(settings, "later-partner")
    ensure_topics(settings, partner_topic_specs(settings, ["later-partner"]))
    producer = make_producer(settings)
    producer.produce(topic, b"an alert read after the restart", partition=0)
    assert producer.flush(30) == 0
    # The lag monitor finds the topic within one measurement (10 s); the stop is a clean one.
    assert worker.process.wait(90) == 0, f"the worker did not stop cleanly: {worker.log_path}"
    log = worker.log_path.read_text()
    assert f"Records on {topic} are not read by this worker" in log and "its restart reads them" in log
    restarted = pipeline.start_worker("w1")
    wait_read(restarted, settings, topic)
    assert restarted.process.poll() is None, "the restarted worker reads the topic and keeps running"


def wait_read(worker, settings, topic):
    """Wait until `worker` has read partition 0 of `topic` to its end and counts no unread topic."""
    deadline = time.monotonic() + 60
    key = lag_key(settings, topic)
    while (samples := worker.scrape()).get(key) != 0 or samples["cwn_unread_producer_topics"] != 0:
        assert time.monotonic() < deadline, f"the worker did not read {topic}: {worker.log_path}"
        time.sleep(1)


def lag_key(settings, topic):
    """The lag sample of partition 0 of `topic`, as the worker's /metrics names it."""
    return f'cwn_consumer_lag_records{{group="{settings.group_id}",partition="0",topic="{topic}"}}'
