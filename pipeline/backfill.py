"""Onboarding backfill: send a new member the recent alerts it would have received.

Reads the retained audit stream (`cwn.alerts.enriched`) from `days` ago and, for each alert,
decides for this one member with the router's own `decide`, against the directory in force
now: the alert is enriched again with today's constituencies (so a newcomer's own assets are
recognised) and TLP and subscriptions apply as of now, so a member never gets an alert its
current rights do not allow. Matching alerts are written to the member's topic exactly as live
deliveries are (its view, its format, the same idempotency key `alert id:member id`), with a
`cwn.backfill` header. Running it twice sends the same records again, with the same keys,
which members deduplicate on.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from connectors.core import Delivery
from connectors.member_topic import encode
from pipeline.alert import Alert
from pipeline.directory import Member
from pipeline.enrich import enrich
from pipeline.kafka import make_producer, make_reader
from pipeline.routing import RoutingIndex
from pipeline.routing.route import Facts, audience_of, decide
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import ENRICHED, member_topic


def select(alert: Alert, member: Member, index: RoutingIndex) -> Delivery | None:
    """The delivery this member is owed for `alert` under today's directory, or None."""
    enrich(alert, index)
    decision = decide(member, Facts.of(alert), audience_of(alert), index, why=False)
    return Delivery(member.id, decision.rule, alert) if decision.receives else None


def read_since(settings: Settings, topic: str, since: datetime, timeout: float = 60.0) -> Iterator[Any]:
    """Every record of `topic` stamped at or after `since`, up to the end each partition had
    when reading began. Reading starts at the first such record of each partition; records
    further on with an older stamp (written late) are skipped."""
    consumer = make_reader(settings, **{"enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        since_ms = int(since.timestamp() * 1000)
        wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
        starts = consumer.offsets_for_times(wanted, timeout=30)
        remaining = set()
        assignment = []
        for tp in starts:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=30)
            if tp.offset >= 0 and tp.offset < high:
                remaining.add(tp.partition)
                assignment.append(TopicPartition(topic, tp.partition, tp.offset))
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout
        while remaining:
            messages = consumer.consume(5000, timeout=1.0)
            if not messages and time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {len(remaining)} partitions did not reach their end")
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == -191:  # _PARTITION_EOF
                        remaining.discard(message.partition())
                        continue
                    raise KafkaException(error)
                deadline = time.monotonic() + timeout
                if message.timestamp()[1] >= since_ms:  # a late write of an older record is not in range
                    yield message
    finally:
        consumer.close()


def backfill(
    settings: Settings,
    member: Member,
    index: RoutingIndex,
    days: float,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Send `member` what it is owed from the last `days` days; a summary of what was done."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    codec = alert_codec()
    producer = None if dry_run else make_producer(settings)
    topic = member_topic(settings, member.id)
    read = 0
    rules: Counter[str] = Counter()
    for message in read_since(settings, settings.topic(ENRICHED), since):
        read += 1
        delivery = select(codec.decode(message.value()), member, index)
        if delivery is None:
            continue
        rules[delivery.rule] += 1
        if producer is not None:
            value, headers = encode(delivery, member.delivery_format)
            key = str(delivery.alert["id"]).encode()
            while True:
                try:
                    producer.produce(
                        topic, key=key, value=value, headers=[*headers, ("cwn.backfill", b"true")]
                    )
                    break
                except BufferError:  # the client's queue is full: wait for acknowledgements
                    producer.poll(0.1)
            producer.poll(0)
    if producer is not None:
        remaining = producer.flush(60)
        if remaining:
            raise TimeoutError(f"{remaining} backfill records were not acknowledged")
    return {
        "member": member.id,
        "since": since.isoformat(),
        "read": read,
        "matched": sum(rules.values()),
        "sent": 0 if dry_run else sum(rules.values()),
        "by_rule": dict(sorted(rules.items())),
    }
