"""Consumer lag measured from the real broker."""

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from pipeline.kafka import client_config, make_producer
from pipeline.lag import LagMonitor
from pipeline.topics import RAW


def test_lag_is_what_the_group_has_not_committed(settings):
    topic = settings.topic(RAW)
    producer = make_producer(settings)
    for n in range(30):
        producer.produce(topic, b"x", partition=n % 3)
    assert producer.flush(30) == 0
    group = settings.group_id
    committer = Consumer(client_config(settings) | {"group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 10)], asynchronous=False)
    committer.close()
    registry = CollectorRegistry()
    gauge = Gauge("cwn_consumer_lag_records", "lag", ["group", "topic", "partition"], registry=registry)
    monitor = LagMonitor(settings, group, lambda: [topic, settings.topic("cwn.no.such.topic")], gauge)
    reader = Consumer(client_config(settings) | {"group.id": group})
    try:
        measured = monitor.measure(reader)
    finally:
        reader.close()
    assert measured == {(topic, 0): 6, (topic, 1): 0, (topic, 2): 10}
    assert (
        registry.get_sample_value(
            "cwn_consumer_lag_records", {"group": group, "topic": topic, "partition": "0"}
        )
        == 6
    )
