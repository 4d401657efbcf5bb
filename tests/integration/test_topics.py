"""Topic creation: every design topic, idempotently, with the configs from one place."""

import pytest
from confluent_kafka.admin import ConfigResource

from pipeline.kafka import ensure_topics, make_admin
from pipeline.settings import Settings
from pipeline.topics import MEMBERS, RAW, pipeline_topics

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
