"""Topic creation: every design topic, idempotently, with the configs from one place."""

import pytest
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka.admin import ConfigResource

from pipeline.kafka import ensure_topics, make_admin, make_producer, read_partitions, watermarks
from pipeline.settings import Settings
from pipeline.topics import MEMBERS, RAW, TopicSpec, pipeline_topics

pytestmark = pytest.mark.integration


def test_ensure_is_idempotent_and_configures(settings: Settings) -> None:
    assert ensure_topics(settings, pipeline_topics(settings)) == []  # the fixture created them
    admin = make_admin(settings)
    topics = admin.list_topics(timeout=10).topics
    for spec in pipeline_topics(settings):
        assert len(topics[spec.name].partitions) == spec.partitions
    resources = [
        ConfigResource("topic", settings.topic(MEMBERS)),
        ConfigResource("topic", settings.topic(RAW)),
    ]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    assert configs[settings.topic(MEMBERS)]["cleanup.policy"].value == "compact"
    assert configs[settings.topic(RAW)]["cleanup.policy"].value == "delete"
    assert configs[settings.topic(RAW)]["retention.ms"].value == str(
        settings.data_retention_hours * 3_600_000
    )


def test_new_topics_can_be_read_at_once(settings: Settings) -> None:
    """A partition is in the metadata a moment before its leader serves it; reading offsets in
    that moment must wait it out, not fail (NOT_LEADER_FOR_PARTITION)."""
    for round_ in range(5):
        specs = [TopicSpec(settings.topic(f"fresh{round_}.t{i}"), 2) for i in range(4)]
        ensure_topics(settings, specs)
        edges = watermarks(settings, [s.name for s in specs])
        assert edges == {(s.name, p): (0, 0) for s in specs for p in range(2)}


def test_read_partitions_reads_each_span_in_order_and_stops_when_asked(settings: Settings) -> None:
    topic = settings.topic("spans")
    ensure_topics(settings, [TopicSpec(topic, 3)])
    producer = make_producer(settings)
    for n in range(300):
        producer.produce(topic, f"{n}".encode(), partition=n % 3)
    producer.flush(30)

    def offsets(start: dict[int, int], last: dict[int, int] | None = None) -> dict[int, list[int]]:
        got: dict[int, list[int]] = {}
        for batch in read_partitions(settings, topic, start, last, batch=7):
            assert len(batch) <= 7
            for message in batch:
                got.setdefault(message.partition(), []).append(message.offset())
        return got

    # Partition 0 to its end, 1 from offset 10 to 19, 2 not at all; each in offset order.
    assert offsets({0: OFFSET_BEGINNING, 1: 10}, {1: 19}) == {0: list(range(100)), 1: list(range(10, 20))}
    assert offsets({2: 100}) == {}  # already at its end
    assert offsets({}) == {}
    read: list[list] = []
    for batch in read_partitions(settings, topic, {0: 0, 1: 0}, stop=lambda: len(read) == 2, batch=7):
        read.append(batch)
    assert len(read) == 2 and sum(map(len, read)) <= 14, "reading ends between batches once stop() is true"
