"""A broker restart while records flow, on a broker of the test's own: nothing is lost, and with
exactly-once processing no member receives a record twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.broker import LocalBroker
from pipeline.demo.run import free_ports, produce_feed
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.topics import ENRICHED, pipeline_topics
from tests.integration.conftest import Pipeline
from tests.integration.test_exactly_once import members_and_feed, records_on
from tests.integration.test_pipeline import delivered, expected_outcome, wait_processing

pytestmark = pytest.mark.integration


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(home=tmp_path / "kafka", port=free_ports(2))
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_broker_restart_mid_stream_loses_nothing(
    own_broker: LocalBroker, settings: Settings, guarantee: str
) -> None:
    # A stalled client call ends the worker after 30 s instead of 90: the same path, sooner.
    settings = settings.model_copy(
        update={"bootstrap": own_broker.bootstrap, "processing_guarantee": guarantee, "stall_seconds": 30}
    )
    ensure_topics(settings, pipeline_topics(settings))
    pipeline = Pipeline(settings)
    try:
        directory, feed = members_and_feed(pipeline, 60, seed=31, duplicate_ratio=0.2, bad_ratio=0.0)
        records = feed.records(2000)
        expected_pairs, _ = expected_outcome(records, directory, settings)
        worker = pipeline.start_worker()
        produce_feed(settings, records[:1500])
        wait_processing(worker, 200)
        own_broker.down()  # a rolling restart of the only broker, with batches in flight
        time.sleep(2)
        own_broker.up()
        produce_feed(settings, records[1500:])

        deadline = time.monotonic() + 360
        got, restarts = delivered(settings), 0
        while {(fp, member) for fp, member, _ in got} != expected_pairs and time.monotonic() < deadline:
            if worker.process is not None and worker.process.poll() is not None:
                # A worker that gave up (exit 70: a write or a commit that could not be made)
                # is restarted, as its orchestrator would.
                assert worker.process.returncode == 70 and restarts < 2, worker.log_path
                pipeline.workers.remove(worker)
                worker, restarts = pipeline.start_worker(), restarts + 1
            time.sleep(2)
            got = delivered(settings)
        assert {(fp, member) for fp, member, _ in got} == expected_pairs, "an alert was lost"
        if guarantee == "exactly_once":
            assert len(got) == len(set(got)), "a member received the same record twice"
            fingerprints = Counter(m for m in records_on(settings, ENRICHED))
            assert set(fingerprints.values()) == {1}
    finally:
        pipeline.stop()
