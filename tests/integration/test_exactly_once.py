"""Exactly-once processing on the real broker: every owed (alert, member) pair is one record,
across a SIGKILL too, and the counts balance from what readers of committed records see."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import OffsetSpec

from pipeline.demo.feed import FeedRecord, SampleFeed
from pipeline.demo.run import cleanup_namespace, produce_feed, wait_settled
from pipeline.directory import Directory, generate_members
from pipeline.kafka import ensure_topics, make_admin, read_topics
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, ENRICHED, NORMALISED, dedup_eos_changelog, pipeline_topics
from tests.integration.conftest import Pipeline
from tests.integration.test_pipeline import delivered, expected_outcome, join_and_leave, normalised

pytestmark = pytest.mark.integration


@pytest.fixture
def eos_pipeline(settings: Settings) -> Iterator[Pipeline]:
    pipeline = Pipeline(settings.model_copy(update={"processing_guarantee": "exactly_once"}))
    yield pipeline
    pipeline.stop()


def members_and_feed(
    pipeline: Pipeline, members: int, seed: int, **feed: float
) -> tuple[Directory, SampleFeed]:
    """A directory of `members`, imported, and a sample feed for it."""
    directory = Directory(generate_members(members, seed=seed))
    pipeline.import_members(directory)
    limit = pipeline.settings.max_message_bytes
    return directory, SampleFeed(list(directory), seed=seed, max_message_bytes=limit, **feed)


def wait_delivered(settings: Settings, owed: int, timeout: float = 300) -> list[tuple[str, str, str]]:
    """Member records once `owed` are there and no more arrive for two seconds."""
    deadline = time.monotonic() + timeout
    got = delivered(settings)
    while time.monotonic() < deadline:
        time.sleep(2)
        again = delivered(settings)
        if len(again) >= owed and len(again) == len(got):
            return again
        got = again
    return got


def enriched_committed(settings: Settings) -> int:
    """Offsets of `cwn.alerts.enriched` below the last stable offset: > 0 once a dispatch
    transaction has committed."""
    admin = make_admin(settings)
    metadata = admin.list_topics(timeout=10).topics[settings.topic(ENRICHED)]
    partitions = [TopicPartition(settings.topic(ENRICHED), p) for p in metadata.partitions]
    spec = dict.fromkeys(partitions, OffsetSpec.latest())
    futures = admin.list_offsets(spec, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=10)
    return sum(f.result().offset for f in futures.values())


def fingerprints_of(records: list[FeedRecord]) -> set[str]:
    return {alert["fingerprint"] for _, parsed in normalised(records) for alert in parsed.alerts}


def records_on(settings: Settings, name: str) -> list[bytes]:
    return [m.value() for m in read_topics(settings, [settings.topic(name)])]


def test_each_pair_once_and_counts_balance(eos_pipeline: Pipeline) -> None:
    pipeline, eos = eos_pipeline, eos_pipeline.settings
    directory, feed = members_and_feed(pipeline, 120, seed=21, duplicate_ratio=0.25, bad_ratio=0.02)
    worker = pipeline.start_worker()
    records = feed.records(3000)
    produce_feed(eos, records)
    expected_pairs, expected_dead = expected_outcome(records, directory, eos)

    counts = wait_settled(eos, [worker], directory, len(records), timeout=300)
    assert counts.lost == 0 and counts.settled(), counts.as_dict()
    assert counts.deliveries == counts.expected_deliveries == len(expected_pairs)
    got = delivered(eos)
    assert len(got) == len(set(got)), "a member received the same alert twice"
    assert Counter((fp, member) for fp, member, _ in got) == Counter(expected_pairs)

    normalised, enriched = records_on(eos, NORMALISED), records_on(eos, ENRICHED)
    dead = records_on(eos, DEADLETTER)
    assert len(normalised) + len(dead) == len(records)
    assert len(dead) == sum(expected_dead.values())
    metrics = worker.scrape()
    assert metrics["cwn_duplicates_total"] == len(normalised) - len(enriched)
    assert metrics['cwn_records_out_total{stage="route"}'] == len(expected_pairs)
    assert metrics["cwn_end_to_end_latency_seconds_count"] == len(expected_pairs)
    assert metrics['cwn_transactions_total{outcome="committed",stage="dispatch"}'] >= 1
    assert metrics["cwn_dedup_keys"] == len(enriched)
    # The dedup state's changelog holds each fingerprint's window, written with the outputs.
    changelog = read_topics(eos, [dedup_eos_changelog(eos)])
    assert {m.key() for m in changelog} == {alert_codec().decode(v)["fingerprint"].encode() for v in enriched}


def test_sigkill_mid_stream_gives_no_duplicate(eos_pipeline: Pipeline) -> None:
    """A worker killed while batches are in flight: its successor (same instance name) aborts
    what was left open and goes on from the last commit. Readers of committed records see every
    owed pair once, and every alert normalised and enriched once."""
    pipeline, eos = eos_pipeline, eos_pipeline.settings
    directory, feed = members_and_feed(pipeline, 120, seed=22, duplicate_ratio=0.3, bad_ratio=0.0)
    records = feed.records(6000)
    expected_pairs, _ = expected_outcome(records, directory, eos)
    worker = pipeline.start_worker("w0")
    produce_feed(eos, records[:4000])
    # Killed as soon as the first batches are committed, while the rest are in flight.
    deadline = time.monotonic() + 120
    while not enriched_committed(eos) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.kill()
    pipeline.workers.remove(worker)
    partial = len(delivered(eos))
    assert 0 < partial < len(expected_pairs), "the kill must land mid-stream"

    # The rest repeats alerts of the first part: the successor drops them only if it got
    # the dedup state back from its changelog.
    assert fingerprints_of(records[:4000]) & fingerprints_of(records[4000:])
    produce_feed(eos, records[4000:])
    again = pipeline.start_worker("w0")
    got = wait_delivered(eos, len(expected_pairs))
    assert len(got) == len(set(got)), "a member received the same alert twice"
    assert Counter((fp, member) for fp, member, _ in got) == Counter(expected_pairs)

    normalised = records_on(eos, NORMALISED)
    assert len(normalised) == len(records), "an alert was normalised twice (or lost)"
    fingerprints = Counter(alert_codec().decode(v)["fingerprint"] for v in records_on(eos, ENRICHED))
    assert set(fingerprints.values()) == {1}
    assert again.scrape()["cwn_worker_ready"] == 1


def test_workers_join_and_leave_mid_stream(settings: Settings, pipeline: Pipeline) -> None:
    """Scale out and back in while records flow, exactly once: a second worker joins a group
    over 8 partitions (partitions move to it, their dedup state read back from its changelog),
    then the first leaves. Every owed pair is on its member topic exactly once, and repeats of
    alerts seen before the moves are dropped."""
    settings = settings.model_copy(
        update={
            "partitions": 8,
            "namespace": settings.namespace + "-e8",
            "processing_guarantee": "exactly_once",
        }
    )
    ensure_topics(settings, pipeline_topics(settings))
    pipeline.settings = settings
    try:
        join_and_leave(settings, pipeline)
        got = delivered(settings)
        assert len(got) == len(set(got)), "a member received the same record twice"
    finally:
        pipeline.stop()
        cleanup_namespace(settings, settings.namespace + ".")
