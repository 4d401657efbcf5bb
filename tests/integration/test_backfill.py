"""Onboarding backfill against the real broker: exactly the matching history, nothing older."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline.backfill import backfill, select
from pipeline.control import publish_members
from pipeline.demo.feed import SampleFeed
from pipeline.demo.run import produce_feed, wait_settled
from pipeline.directory import Directory, generate_members
from pipeline.kafka import make_producer, read_topics
from pipeline.routing import RoutingIndex
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import ENRICHED, member_topic
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


def test_a_new_member_gets_exactly_the_history_it_is_owed(settings: Settings, pipeline: Pipeline) -> None:
    everyone = generate_members(40, seed=12)
    newcomer, founders = everyone[-1], Directory(everyone[:-1])
    pipeline.import_members(founders)
    worker = pipeline.start_worker()
    # Alerts about every member's network, the newcomer's included, before it joins.
    records = SampleFeed(
        everyone, seed=21, bad_ratio=0.0, max_message_bytes=settings.max_message_bytes
    ).records(1500)
    produce_feed(settings, records)
    wait_settled(settings, [worker], founders, len(records), timeout=300)

    enriched = read_topics(settings, [settings.topic(ENRICHED)])
    codec = alert_codec()
    directory = Directory(everyone)
    publish_members(settings, [newcomer])
    index = RoutingIndex(directory)
    expected = {}
    for message in enriched:
        delivery = select(codec.decode(message.value()), newcomer, index)
        if delivery is not None:
            expected[delivery.alert["id"]] = delivery.rule
    rules = set(expected.values())
    assert "inside" in rules and any(r.startswith("subscription:") for r in rules), rules

    # An alert the newcomer would be owed, but written before the backfill horizon.
    owed = next(m for m in enriched if codec.decode(m.value())["id"] in expected)
    old = codec.decode(owed.value()) | {"id": "00000000-0000-4000-8000-000000000001"}
    assert select(dict(old), newcomer, index) is not None
    producer = make_producer(settings)
    ten_days_ago = int((datetime.now(UTC) - timedelta(days=10)).timestamp() * 1000)
    producer.produce(settings.topic(ENRICHED), key=b"old", value=codec.encode(old), timestamp=ten_days_ago)
    producer.flush(30)

    dry = backfill(settings, newcomer, index, days=7, dry_run=True)
    assert (dry["matched"], dry["sent"]) == (len(expected), 0)
    summary = backfill(settings, newcomer, index, days=7)
    assert summary["read"] == len(enriched) and summary["sent"] == len(expected)

    time.sleep(1)
    got = read_topics(settings, [member_topic(settings, newcomer.id)])
    assert {m.key().decode(): dict(m.headers())["cwn.rule"].decode() for m in got} == expected
    assert all(dict(m.headers())["cwn.backfill"] == b"true" for m in got)
    for message in got:
        view = orjson.loads(message.value())
        assert set(view["members_inside"]) <= {newcomer.id}, "a member sees no other member's id"
        assert view["tlp"] != "RED" or newcomer.id in view["recipients"]
