"""`cwn connect webhook` end to end on the real broker, with 102 members behind a real HTTPS
receiver: 100 healthy, one whose endpoint hangs and one that always answers 503."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from connectors.kinds import WebhookKind
from connectors.metrics import create_connector_metrics
from connectors.runner import Runner, group_id
from connectors.secrets import SecretStore
from connectors.settings import ConnectSettings
from pipeline.control import DirectoryView, publish_members
from pipeline.directory import Member, Target
from pipeline.kafka import client_config, read_topics
from pipeline.topics import DELIVERY_DEADLETTER, RECEIPTS, member_topic
from tests.integration.connectors.harnesses import WEBHOOK_SECRET
from tests.integration.connectors.member_topics import put_deliveries
from tests.servers import WebhookServer

pytestmark = pytest.mark.integration

HEALTHY = [f"m{i:03d}" for i in range(100)]
HANG, FAIL = "m-hang", "m-fail"
PER_MEMBER = 20


def members(port: int) -> list[Member]:
    return [
        Member(
            id=member_id,
            name=f"Member {member_id}",
            targets=(
                Target(
                    id="hook",
                    type="webhook",
                    endpoint=f"https://localhost:{port}/{member_id}",
                    secret_ref=f"{member_id}-hook",
                    tlp_ceiling="AMBER",
                ),
            ),
        )
        for member_id in [*HEALTHY, HANG, FAIL]
    ]


def committed(settings, ids) -> dict[str, int]:
    consumer = Consumer(client_config(settings) | {"group.id": group_id(settings, "webhook")})
    try:
        parts = consumer.committed([TopicPartition(member_topic(settings, m), 0) for m in ids], timeout=30)
        return {p.topic.rpartition(".")[2]: p.offset for p in parts}
    finally:
        consumer.close()


def test_a_hanging_and_a_failing_member_do_not_hold_up_100_healthy_ones(settings, tls, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for member_id in [*HEALTHY, HANG, FAIL]:
        (secrets / f"{member_id}-hook").write_text(WEBHOOK_SECRET)
    connect = ConnectSettings(
        secrets_dir=secrets,
        allow_internal="127.0.0.0/8,::1/128",
        ca_file=tls.ca_file,
        send_timeout_seconds=300,  # the hanging endpoint's send never ends during the test
        retry_base_seconds=0.02,
        retry_cap_seconds=0.1,
        max_attempts=3,
        linger_seconds=0.02,
        commit_seconds=0.2,
    )
    registry = CollectorRegistry()
    metrics = create_connector_metrics(registry)

    def count(outcome):
        return (
            registry.get_sample_value(
                "cwn_connector_deliveries_total", {"connector": "webhook", "outcome": outcome}
            )
            or 0
        )

    async def main():
        server = await WebhookServer([WEBHOOK_SECRET], tls).start()
        server.paths = {HANG: "hang", FAIL: "retry"}
        publish_members(settings, members(server.port))
        written = put_deliveries(settings, [*HEALTHY, HANG, FAIL], PER_MEMBER)
        values = {m: [value for _, value in pairs] for m, pairs in written.items()}
        view = DirectoryView(settings).start()
        assert view.wait_ready(60)
        runner = Runner(WebhookKind(connect, SecretStore(secrets)), settings, connect, metrics, view)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        healthy = len(HEALTHY) * PER_MEMBER
        snapshot = None
        for _ in range(1200):
            delivered = sum(1 for d in server.received if d["path"] in HEALTHY)
            if delivered >= healthy and count("deadlettered") >= PER_MEMBER and not runner._outbox:
                snapshot = {
                    "healthy": delivered,
                    "hang received": sum(1 for d in server.received if d["path"] == HANG),
                    "hang unfinished": len(runner.endpoints[(HANG, "hook")]),
                }
                break
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.6)  # one more commit round
        stop.set()
        await asyncio.wait_for(task, 60)
        view.stop()
        await server.stop()
        return snapshot, values

    snapshot, values = asyncio.run(main())
    # While the hanging member's first batch was still waiting for an answer, every healthy
    # member had all its alerts: the hang held up nobody.
    assert snapshot == {"healthy": 2000, "hang received": 0, "hang unfinished": PER_MEMBER}

    assert count("read") == (len(HEALTHY) + 2) * PER_MEMBER
    assert count("delivered") == len(HEALTHY) * PER_MEMBER
    assert count("deadlettered") == PER_MEMBER

    receipts = [orjson.loads(m.value()) for m in read_topics(settings, [settings.topic(RECEIPTS)])]
    outcomes = Counter((r["member"] in HEALTHY, r["outcome"]) for r in receipts)
    assert outcomes == {(True, "delivered"): 2000, (False, "deadlettered"): PER_MEMBER}
    assert len({r["key"] for r in receipts}) == len(receipts)

    dead = read_topics(settings, [settings.topic(DELIVERY_DEADLETTER)])
    assert sorted(m.value() for m in dead) == sorted(values[FAIL])
    for message in dead:
        headers = dict(message.headers())
        assert headers["cwn.error"] == b"gave up after 3 attempt(s): HTTP 503"
        assert headers["cwn.member"] == FAIL.encode() and headers["cwn.attempts"] == b"3"
        assert headers["cwn.idempotency-key"].endswith(b":" + FAIL.encode())

    offsets = committed(settings, [*HEALTHY, HANG, FAIL])
    assert {m: offsets[m] for m in [*HEALTHY, FAIL]} == dict.fromkeys([*HEALTHY, FAIL], PER_MEMBER)
    # Nothing of the hanging member was finished, so nothing of it is committed: a restarted
    # connector delivers it again.
    assert offsets[HANG] <= 0
