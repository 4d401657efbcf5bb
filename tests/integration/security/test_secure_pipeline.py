"""The whole pipeline on the secured broker, every party with its own least-privileged
principal: partners write their own raw topics, a worker runs as `cwn-worker`, counts balance,
and no partner can write as another."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Producer

from pipeline.control import publish_feeds, publish_members
from pipeline.demo.feed import PRODUCER, SampleFeed, demo_feeds
from pipeline.demo.run import Worker, free_port, produce_feed, remove_state, wait_settled
from pipeline.directory import Directory, generate_members
from pipeline.feeds import FeedRegistry, FeedSpec
from pipeline.kafka import client_config, read_topics
from pipeline.security.acl import WORKER, producer_grants, worker_grants
from pipeline.topics import DEADLETTER, RAW, partner_raw_topic
from tests.integration.security.conftest import as_principal

pytestmark = pytest.mark.integration

ROGUE = "rogue-sensor"


def refused_write(settings, topic: str) -> list[int]:
    errors = []
    producer = Producer(client_config(settings) | {"message.timeout.ms": 20_000})
    producer.produce(
        topic, b"{}", headers=[("feed", b"cwn-demo/ids")], on_delivery=lambda e, _m: errors.append(e)
    )
    producer.flush(30)
    return [e.code() if e else None for e in errors]


def test_demo_on_the_secured_broker_balances_and_no_partner_writes_as_another(admin, provisioner):
    directory = Directory(generate_members(60, seed=4))
    rogue_feed = FeedSpec(id="rogue/alerts", format="alert-json", producers=(ROGUE,))
    feeds = FeedRegistry([*demo_feeds(), rogue_feed])
    publish_feeds(admin, feeds)
    publish_members(admin, directory)
    worker_settings = as_principal(admin, WORKER, provisioner.ensure_user(WORKER))
    provisioner.grant(worker_grants(admin))
    partner = as_principal(admin, PRODUCER, provisioner.ensure_user(PRODUCER))
    provisioner.grant(producer_grants(admin, PRODUCER))
    rogue = as_principal(admin, ROGUE, provisioner.ensure_user(ROGUE))
    provisioner.grant(producer_grants(admin, ROGUE))

    # The rogue partner may write neither the shared raw topic nor another partner's.
    assert refused_write(rogue, admin.topic(RAW)) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert refused_write(rogue, partner_raw_topic(admin, PRODUCER)) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    worker = Worker(worker_settings, "w0", free_port(), admin.state_dir / "logs").start()
    try:
        worker.wait_ready()
        feed = SampleFeed(list(directory), seed=2, duplicate_ratio=0.2, bad_ratio=0.02,
                          max_message_bytes=admin.max_message_bytes)  # fmt: skip
        records = feed.records(1500)
        assert produce_feed(partner, records, partner_raw_topic(admin, PRODUCER)) == 1500
        # On its own topic, the rogue partner sends genuine records of the demo's feeds,
        # claiming to be the demo's producer, or not claiming anyone: refused either way.
        forged = records[:10]
        assert produce_feed(rogue, forged, partner_raw_topic(admin, ROGUE)) == 10
        counts = wait_settled(admin, [worker], directory, len(records) + 10, timeout=300)
    finally:
        worker.stop()
        remove_state(worker)
    log = worker.log_path.read_text(errors="replace")
    assert "AUTHORIZATION_FAILED" not in log, log[-3000:]
    assert counts.lost == 0 and counts.ingested == 1510, counts.as_dict()
    assert counts.rejected == 30 + 10 and counts.duplicates > 0 and counts.deliveries > 0

    forged_dead = [
        dict(m.headers())
        for m in read_topics(admin, [admin.topic(DEADLETTER)])
        if dict(m.headers())["cwn.error.field"] == b"producer"
    ]
    assert len(forged_dead) == 10
    for headers in forged_dead:
        reason = headers["cwn.error.reason"].decode()
        assert f"written by '{ROGUE}'" in reason or f"producer '{ROGUE}' may not write" in reason
