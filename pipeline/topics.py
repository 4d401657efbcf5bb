"""Every topic of the pipeline, with its partitions and configs, in one place."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.settings import Settings

RAW = "cwn.alerts.raw"
NORMALISED = "cwn.alerts.normalised"
ENRICHED = "cwn.alerts.enriched"
DEADLETTER = "cwn.deadletter"
MEMBERS = "cwn.members"
SUBSCRIPTIONS = "cwn.subscriptions"
FEEDS = "cwn.feeds"
ENRICHMENT = "cwn.enrichment"
RECEIPTS = "cwn.delivery.receipts"
DELIVERY_DEADLETTER = "cwn.delivery.deadletter"
DELIVER_PREFIX = "cwn.deliver."

_HOUR_MS = 3_600_000
_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def dedup_changelog(settings: Settings) -> str:
    """The dedup table's changelog, named as Faust names it."""
    return f"{settings.group_id}-dedupe-changelog"


def dedup_eos_changelog(settings: Settings) -> str:
    """The exactly-once dedup state's changelog (`pipeline.transactional`), under the same prefix."""
    return f"{settings.group_id}-dedupe-eos-changelog"


def member_topic(settings: Settings, member_id: str) -> str:
    """The topic one member reads its deliveries from."""
    return settings.topic(DELIVER_PREFIX + member_id)


def member_topic_prefix(settings: Settings) -> str:
    return settings.topic(DELIVER_PREFIX)


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """The fixed topics: data topics with time retention, control topics compacted forever."""
    data = {"retention.ms": str(settings.data_retention_hours * _HOUR_MS), "cleanup.policy": "delete"}
    month = {"retention.ms": str(30 * 24 * _HOUR_MS), "cleanup.policy": "delete"}
    control = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "retention.ms": "-1"}
    p = settings.partitions
    return [
        TopicSpec(settings.topic(RAW), p, data),
        TopicSpec(settings.topic(NORMALISED), p, data),
        TopicSpec(settings.topic(ENRICHED), p, data),
        TopicSpec(settings.topic(DEADLETTER), p, month),
        TopicSpec(settings.topic(RECEIPTS), p, data),
        TopicSpec(settings.topic(DELIVERY_DEADLETTER), p, month),
        TopicSpec(settings.topic(MEMBERS), 1, control),
        TopicSpec(settings.topic(SUBSCRIPTIONS), 1, control),
        TopicSpec(settings.topic(FEEDS), 1, control),
        TopicSpec(settings.topic(ENRICHMENT), 1, control),
        # Created with the others rather than left to Faust: a worker that starts while the
        # broker is slow to create it finds it missing, and its dispatch agent stops for good.
        TopicSpec(dedup_changelog(settings), p, {"cleanup.policy": "compact"}),
        TopicSpec(dedup_eos_changelog(settings), p, {"cleanup.policy": "compact"}),
    ]


def partner_raw_topic(settings: Settings, producer: str) -> str | None:
    """The raw topic only `producer` may write on a secured broker; None when its name cannot be
    a topic name (it holds `@`)."""
    if not _TOPIC_SAFE.match(producer):
        return None
    return settings.topic(f"{RAW}.{producer}")


def partner_topics_prefix(settings: Settings) -> str:
    """What the names of the producers' own raw topics start with."""
    return settings.topic(RAW) + "."


def producer_of_topic(settings: Settings, topic: str) -> str | None:
    """The producer whose own raw topic `topic` is, or None for any other topic."""
    prefix = partner_topics_prefix(settings)
    return topic[len(prefix) :] if topic.startswith(prefix) and len(topic) > len(prefix) else None


def partner_topic_specs(settings: Settings, producers: Iterable[str]) -> list[TopicSpec]:
    data = {"retention.ms": str(settings.data_retention_hours * _HOUR_MS), "cleanup.policy": "delete"}
    names = sorted({t for p in producers if (t := partner_raw_topic(settings, p))})
    return [TopicSpec(name, settings.partitions, data) for name in names]


def member_topic_spec(settings: Settings, member_id: str) -> TopicSpec:
    """One partition per member keeps its alerts in order; retention as for data topics."""
    data = {"retention.ms": str(settings.data_retention_hours * _HOUR_MS), "cleanup.policy": "delete"}
    return TopicSpec(member_topic(settings, member_id), 1, data)
