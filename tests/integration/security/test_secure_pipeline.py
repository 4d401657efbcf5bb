"""The whole pipeline on the secured broker, every party with its own least-privileged
principal: a partner writes the raw topic, a worker runs as `cwn-worker`, and counts balance."""

from __future__ import annotations

import pytest

from pipeline.control import publish_feeds, publish_members
from pipeline.demo.feed import PRODUCER, SampleFeed, demo_feeds
from pipeline.demo.run import Worker, produce_feed, remove_state, wait_settled
from pipeline.directory import Directory, generate_members
from pipeline.security.acl import WORKER, producer_grants, worker_grants
from tests.integration.conftest import free_port
from tests.integration.security.conftest import as_principal

pytestmark = pytest.mark.integration


def test_demo_on_the_secured_broker_balances(admin, provisioner):
    directory = Directory(generate_members(60, seed=4))
    publish_feeds(admin, demo_feeds())
    publish_members(admin, directory)
    worker_settings = as_principal(admin, WORKER, provisioner.ensure_user(WORKER))
    provisioner.grant(worker_grants(admin))
    partner = as_principal(admin, PRODUCER, provisioner.ensure_user(PRODUCER))
    provisioner.grant(producer_grants(admin, PRODUCER))

    worker = Worker(worker_settings, "w0", free_port(), admin.state_dir / "logs").start()
    try:
        worker.wait_ready()
        feed = SampleFeed(list(directory), seed=2, duplicate_ratio=0.2, bad_ratio=0.02,
                          max_message_bytes=admin.max_message_bytes)  # fmt: skip
        records = feed.records(1500)
        assert produce_feed(partner, records) == 1500
        counts = wait_settled(admin, [worker], directory, len(records), timeout=300)
    finally:
        worker.stop()
        remove_state(worker)
    log = worker.log_path.read_text(errors="replace")
    assert "AUTHORIZATION_FAILED" not in log.replace("TopicsRefused", ""), log[-3000:]
    assert counts.lost == 0 and counts.ingested == 1500, counts.as_dict()
    assert counts.rejected == 30 and counts.duplicates > 0 and counts.deliveries > 0
