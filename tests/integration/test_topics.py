"""Topic creation: every design topic, idempotently, with the configs from one place."""

import pytest
from confluent_kafka.admin import ConfigResource

from pipeline.kafka import ensure_topics, make_admin, watermarks
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
