"""Who may do what on the broker: the ACLs of every principal, as pure data.

- A member (`member-<id>`) may read and describe its own topic, `cwn.deliver.<id>`, and use
  consumer groups whose names start with `member.<id>.`; nothing else (no other topic, no write).
- A partner producer (the producer names of `feeds.yaml`) may write and describe its own raw
  topic, `cwn.alerts.raw.<producer>`, only; the normaliser takes a record's producer from that
  topic, so no partner can write as another.
- The pipeline's workers (`cwn-worker`) read the raw and control topics, write the pipeline's own
  topics and every member topic, and use their own consumer group; connector runners
  (`cwn-connect`) read member topics and the control topics, write receipts and delivery dead
  letters, and use the connector groups. Topic creation and provisioning are the administrator's.

Names follow `Settings.topic` and `Settings.group_id`, so a namespaced deployment gets the same
rules inside its namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings import Settings
from pipeline.topics import (
    DEADLETTER,
    DELIVERY_DEADLETTER,
    ENRICHED,
    ENRICHMENT,
    FEEDS,
    MEMBERS,
    NORMALISED,
    RAW,
    RECEIPTS,
    SUBSCRIPTIONS,
    dedup_changelog,
    dedup_eos_changelog,
    member_topic,
    member_topic_prefix,
    partner_raw_topic,
)

WORKER = "cwn-worker"
CONNECT = "cwn-connect"


@dataclass(frozen=True, slots=True)
class Grant:
    """One ALLOW ACL: `principal` may do `operation` on a resource (literal name or prefix)."""

    principal: str
    resource: str  # "topic", "group", "cluster", "transactional_id"
    name: str
    operation: str  # "READ", "WRITE", "DESCRIBE", "CREATE", "IDEMPOTENT_WRITE"
    prefixed: bool = False


def member_principal(member_id: str) -> str:
    return f"member-{member_id}"


def member_group_prefix(settings: Settings, member_id: str) -> str:
    return settings.topic(f"member.{member_id}.")


def member_grants(settings: Settings, member_id: str) -> list[Grant]:
    user = f"User:{member_principal(member_id)}"
    topic = member_topic(settings, member_id)
    return [
        Grant(user, "topic", topic, "READ"),
        Grant(user, "topic", topic, "DESCRIBE"),
        Grant(user, "group", member_group_prefix(settings, member_id), "READ", prefixed=True),
    ]


def producer_grants(settings: Settings, producer: str) -> list[Grant]:
    """Write its own raw topic, nothing else: the topic then proves who wrote a record."""
    user = f"User:{producer}"
    own = partner_raw_topic(settings, producer)
    if own is None:
        raise ValueError(f"producer {producer!r} cannot have a topic of its own (only A-Z a-z 0-9 . _ -)")
    return [Grant(user, "topic", own, "WRITE"), Grant(user, "topic", own, "DESCRIBE")]


def worker_grants(settings: Settings) -> list[Grant]:
    user = f"User:{WORKER}"
    t = settings.topic
    grants = [Grant(user, "group", settings.group_id, op, prefixed=True) for op in ("READ", "DESCRIBE")]
    for topic in (RAW, NORMALISED, MEMBERS, SUBSCRIPTIONS, FEEDS, ENRICHMENT):
        grants += [Grant(user, "topic", t(topic), op) for op in ("READ", "DESCRIBE")]
    grants += [Grant(user, "topic", t(RAW) + ".", op, prefixed=True) for op in ("READ", "DESCRIBE")]
    for topic in (NORMALISED, ENRICHED, DEADLETTER):
        grants += [Grant(user, "topic", t(topic), op) for op in ("WRITE", "DESCRIBE")]
    # Faust's own topics (the dedup changelog, its assignor's topic) start with the group id.
    internal = f"{settings.group_id}-"
    assert dedup_changelog(settings).startswith(internal)
    assert dedup_eos_changelog(settings).startswith(internal)
    ops = ("CREATE", "READ", "WRITE", "DESCRIBE")
    grants += [Grant(user, "topic", internal, op, prefixed=True) for op in ops]
    grants += [
        Grant(user, "topic", member_topic_prefix(settings), op, prefixed=True) for op in ("WRITE", "DESCRIBE")
    ]
    # Exactly-once processing: the stages' transactional ids start with the group id too.
    grants += [Grant(user, "transactional_id", internal, op, prefixed=True) for op in ("WRITE", "DESCRIBE")]
    return grants


def connect_grants(settings: Settings) -> list[Grant]:
    user = f"User:{CONNECT}"
    t = settings.topic
    groups = f"{settings.group_id}-connect-"
    grants = [Grant(user, "group", groups, op, prefixed=True) for op in ("READ", "DESCRIBE")]
    # The control-topic reader's group (looked up, never joined).
    grants += [Grant(user, "group", f"{settings.group_id}-reader", op) for op in ("READ", "DESCRIBE")]
    grants += [
        Grant(user, "topic", member_topic_prefix(settings), op, prefixed=True) for op in ("READ", "DESCRIBE")
    ]
    for topic in (MEMBERS, SUBSCRIPTIONS, FEEDS, ENRICHMENT):
        grants += [Grant(user, "topic", t(topic), op) for op in ("READ", "DESCRIBE")]
    for topic in (RECEIPTS, DELIVERY_DEADLETTER):
        grants += [Grant(user, "topic", t(topic), op) for op in ("WRITE", "DESCRIBE")]
    return grants
