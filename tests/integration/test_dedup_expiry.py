"""Expiry of the dedup state on the real broker, under both processing guarantees: windows
that closed long ago leave the state and its changelog, and stay out after a rebuild."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from pipeline.demo.feed import FeedRecord
from pipeline.demo.run import Worker, produce_feed
from pipeline.kafka import read_topics
from pipeline.settings import Settings
from pipeline.topics import dedup_changelog, dedup_eos_changelog
from tests.integration.conftest import Pipeline
from tests.integration.test_exactly_once import members_and_feed
from tests.integration.test_pipeline import normalised, wait_processing

pytestmark = pytest.mark.integration


def swept_state(settings: Settings, worker: Worker, timeout: float = 60) -> tuple[set[str], int]:
    """The fingerprints whose last changelog record is a tombstone, and how many keys are left,
    once the worker's counters agree with its changelog (its gauge of keys is refreshed on a
    timer at least once)."""
    exact = settings.processing_guarantee == "exactly_once"
    topic = dedup_eos_changelog(settings) if exact else dedup_changelog(settings)
    deadline = time.monotonic() + timeout
    while True:
        last: dict[bytes, bytes | None] = {}
        tombstones = 0
        for message in read_topics(settings, [topic]):
            last[message.key()] = message.value()
            tombstones += message.value() is None
        kept = sum(value is not None for value in last.values())
        metrics = worker.scrape()
        if metrics.get("cwn_dedup_expired_total") == tombstones and metrics.get("cwn_dedup_keys") == kept:
            return {key.decode() for key, value in last.items() if value is None}, kept
        assert time.monotonic() < deadline, f"{metrics} against {tombstones} tombstones, {kept} kept"
        time.sleep(1)


def observed_before(records: list[FeedRecord], moment: datetime) -> tuple[set[str], set[str]]:
    """The fingerprints of `records` observed before `moment`, and those observed after it."""
    alerts = [alert for _, parsed in normalised(records) for alert in parsed.alerts]
    return (
        {a["fingerprint"] for a in alerts if a["time_observation"] < moment},
        {a["fingerprint"] for a in alerts if a["time_observation"] >= moment},
    )


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_windows_long_closed_leave_the_state_and_stay_out_after_a_rebuild(
    pipeline: Pipeline, guarantee: Literal["at_least_once", "exactly_once"]
) -> None:
    """With a 15-minute window, sample alerts (observed 10-60 minutes ago) last seen more than
    30 minutes ago are over as soon as they are stored: batches after them sweep them out, with
    a tombstone on the state's changelog, while the others stay. A worker rebuilding its state
    from an empty volume reads back only what is left."""
    settings = pipeline.settings = pipeline.settings.model_copy(
        update={"processing_guarantee": guarantee, "dedup_window_seconds": 900, "batch_size": 50}
    )
    _, feed = members_and_feed(pipeline, 40, seed=23, duplicate_ratio=0.0, bad_ratio=0.0)
    worker = pipeline.start_worker()
    first = feed.records(300)
    produce_feed(settings, first)
    wait_processing(worker, len(first))
    for n in range(12):  # later batches, each sweeping the next slice of the state
        produce_feed(settings, feed.records(20))
        wait_processing(worker, len(first) + 20 * (n + 1))

    swept, kept = swept_state(settings, worker)
    now = datetime.now(UTC)
    over, _ = observed_before(first, now - timedelta(minutes=31))
    _, live = observed_before(first, now - timedelta(minutes=29))
    assert over and over <= swept
    assert live and not live & swept
    assert kept >= len(live)

    worker.stop()
    pipeline.workers.remove(worker)
    shutil.rmtree(worker.settings.data_dir, ignore_errors=True)
    again = pipeline.start_worker()  # returns once the state is read back
    deadline = time.monotonic() + 30
    while (read_back := again.scrape().get("cwn_dedup_keys")) != kept:
        assert time.monotonic() < deadline, f"{read_back} keys read back, not {kept}"
        time.sleep(0.5)
