"""The real Kafka broker of the test session, and helpers to run pipelines on it.

The session starts its own single-node broker (the same `LocalBroker` as `cwn kafka up`) on free
loopback ports in a temporary folder, and stops it at the end. `KAFKA_BOOTSTRAP=host:port`
points the suite at an existing cluster instead. Each test works in a namespace of its own, so
tests never see each other's topics, groups or state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.broker import LocalBroker
from pipeline.control import publish_feeds, publish_members
from pipeline.demo.feed import demo_feeds
from pipeline.demo.run import Worker, cleanup_namespace, free_port, free_ports, remove_state
from pipeline.directory import Directory
from pipeline.feeds import FeedRegistry
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.topics import pipeline_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    broker = LocalBroker(home=tmp_path_factory.mktemp("kafka"), port=free_ports(2))
    broker.up()
    try:
        yield broker.bootstrap
    finally:
        broker.down()


@pytest.fixture
def settings(bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test: its own namespace, state folder and small batches."""
    s = Settings(
        bootstrap=bootstrap,
        namespace=f"t{uuid.uuid4().hex[:10]}",
        partitions=3,
        state_dir=tmp_path,
        data_dir=tmp_path / "worker",
        metrics_port=0,
        batch_size=200,
        log_level="info",
        dedup_window_seconds=24 * 3600,
    )
    ensure_topics(s, pipeline_topics(s))
    yield s
    cleanup_namespace(s, s.namespace + ".")


class Pipeline:
    """Workers started for a test, stopped (and their state removed) at its end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers: list[Worker] = []

    def start_worker(self, name: str = "w0", **changes: Any) -> Worker:
        """Start a worker (with `changes` to the session's settings) and wait until it is ready."""
        settings = self.settings.model_copy(update=changes)
        worker = Worker(settings, name, free_port(), self.settings.state_dir / "logs").start()
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def import_members(self, directory: Directory, feeds: FeedRegistry | None = None) -> None:
        """Import the members, and the feeds (the sample feed's unless others are given)."""
        publish_feeds(self.settings, feeds or demo_feeds())
        publish_members(self.settings, directory)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
            remove_state(worker)


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    p = Pipeline(settings)
    yield p
    p.stop()
