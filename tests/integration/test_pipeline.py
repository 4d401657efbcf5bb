"""The whole pipeline on the real broker: exactly the expected deliveries and dead letters."""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry, Gauge

from pipeline.bench.measure import process_tree
from pipeline.demo.feed import BAD_FIELDS, FeedRecord, SampleFeed, demo_feeds
from pipeline.demo.run import Worker, cleanup_namespace, member_topics, produce_feed, wait_settled
from pipeline.directory import Directory, generate_members
from pipeline.enrich import enrich
from pipeline.kafka import client_config, count_committed, count_records, ensure_topics, read_topics
from pipeline.lag import LagMonitor
from pipeline.normalise import Limits, normalise
from pipeline.parsers import Parsed
from pipeline.routing import RoutingIndex, route
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, ENRICHED, NORMALISED, RAW, dedup_changelog, pipeline_topics
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


def normalised(
    records: list[FeedRecord], max_message_bytes: int = 512 * 1024
) -> Iterator[tuple[FeedRecord, Parsed]]:
    """Each record with what the pure normaliser makes of it, under the sample feeds' registry."""
    limits, feeds, now = Limits(max_message_bytes), demo_feeds(), datetime.now(UTC)
    for record in records:
        yield record, normalise(record.value, dict(record.headers), feeds, limits, now)


def expected_outcome(
    records: list[FeedRecord], directory: Directory, settings: Settings
) -> tuple[set[tuple[str, str]], Counter]:
    """What the pipeline must produce, from the pure functions: (fingerprint, member) pairs and
    the dead letters as (original bytes, field)."""
    index = RoutingIndex(directory)
    seen: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    dead: Counter = Counter()
    for record, parsed in normalised(records, settings.max_message_bytes):
        for rejected in parsed.rejected:
            dead[(record.value, rejected.field)] += 1
        for alert in parsed.alerts:
            if alert["fingerprint"] in seen:
                continue
            seen.add(alert["fingerprint"])
            enrich(alert, index)
            pairs.update((alert["fingerprint"], d.member_id) for d in route(alert, index))
    return pairs, dead


def delivered(settings: Settings) -> list[tuple[str, str, str]]:
    """(fingerprint, member, alert id) of every record on every member topic."""
    prefix_len = len(settings.topic("cwn.deliver."))
    out = []
    for message in read_topics(settings, member_topics(settings)):
        alert = orjson.loads(message.value())
        out.append((alert["fingerprint"], message.topic()[prefix_len:], alert["id"]))
    return out


@pytest.mark.parametrize("writer", ["clients", "process"])
def test_ten_thousand_alerts_exactly(settings: Settings, pipeline: Pipeline, writer: str) -> None:
    directory = Directory(generate_members(150, seed=11))
    pipeline.import_members(directory)
    worker = pipeline.start_worker(member_topic_writer=writer)
    feed = SampleFeed(list(directory), seed=5, duplicate_ratio=0.3, bad_ratio=0.01,
                      max_message_bytes=settings.max_message_bytes)  # fmt: skip
    records = feed.records(10_000)
    assert sum(r.kind == "duplicate" for r in records) == 3000
    assert sum(r.serial < 0 for r in records) == 100

    produce_feed(settings, records)
    counts = wait_settled(settings, [worker], directory, len(records), timeout=300)

    expected_pairs, expected_dead = expected_outcome(records, directory, settings)
    got = delivered(settings)
    assert len(got) == len(set(got)), "a member received the same alert twice"
    assert {(fp, member) for fp, member, _ in got} == expected_pairs
    assert len(got) == len(expected_pairs)

    dead = read_topics(settings, [settings.topic(DEADLETTER)])
    got_dead = Counter()
    for message in dead:
        headers = dict(message.headers())
        assert headers["cwn.error.reason"], "every dead letter says why"
        assert headers["cwn.error.feed"] == b"cwn-demo/broken-partner"
        assert headers["cwn.error.stage"] == b"normalise"
        got_dead[(message.value(), headers["cwn.error.field"].decode())] += 1
    assert got_dead == expected_dead
    assert {field for _, field in got_dead} == set(BAD_FIELDS.values())

    assert counts.as_dict() | {"expected_deliveries": 0} == {
        "ingested": 10_000, "accepted": 9_900, "skipped": 0, "rejected": 100, "normalised": 9_900,
        "deadlettered": 100, "deadletters_written": 100, "duplicates": 3_000, "updates": 0,
        "unique": 6_900, "enriched": 6_900, "route_read": 6_900, "routed": len(expected_pairs),
        "deliveries": len(expected_pairs), "expected_deliveries": 0, "lost": 0,
    }  # fmt: skip
    assert counts.expected_deliveries == len(expected_pairs)

    metrics = worker.scrape()
    assert metrics['cwn_records_in_total{stage="normalise"}'] == 10_000
    assert sum(v for k, v in metrics.items() if k.startswith("cwn_deadlettered_total{")) == 100
    assert metrics["cwn_duplicates_total"] == 3_000
    assert metrics['cwn_records_out_total{stage="route"}'] == len(expected_pairs)
    assert metrics["cwn_directory_members"] == 150
    assert metrics["cwn_end_to_end_latency_seconds_count"] == len(expected_pairs)
    assert "Acting on the consumer lag failed" not in worker.log_path.read_text()  # the progress watch


def test_restart_mid_stream_keeps_dedup_state(settings: Settings, pipeline: Pipeline) -> None:
    """Stop the worker mid-stream and start it again (as a rolling restart does, keeping its
    state volume): nothing is lost, and no duplicate dropped before the restart is sent after it."""
    directory = Directory(generate_members(80, seed=3))
    pipeline.import_members(directory)
    feed = SampleFeed(list(directory), seed=9, duplicate_ratio=0.3, bad_ratio=0.0,
                      max_message_bytes=settings.max_message_bytes)  # fmt: skip
    first, second = feed.records(4000), None
    originals = {r.serial for r in first if r.kind == "unique"}
    # The second half repeats alerts of the first: they must all be dropped as duplicates.
    second = [FeedRecord(r.value, r.headers, "duplicate", r.serial) for r in first if r.kind == "unique"][
        :1500
    ]

    worker = pipeline.start_worker("w0")
    produce_feed(settings, first)
    wait_settled(settings, [worker], directory, len(first), timeout=300)
    produce_feed(settings, second[:750])
    worker.stop()
    pipeline.workers.remove(worker)

    again = pipeline.start_worker("w0")
    produce_feed(settings, second[750:])
    wait_until_quiet(settings, again, len(first) + len(second))
    assert again.scrape()["cwn_duplicates_total"] >= 750

    expected_pairs, _ = expected_outcome(first, directory, settings)
    ids_per_pair: dict[tuple[str, str], set[str]] = {}
    for fp, member, alert_id in delivered(settings):
        ids_per_pair.setdefault((fp, member), set()).add(alert_id)
    assert set(ids_per_pair) == expected_pairs, "an alert was lost or misrouted across the restart"
    assert all(len(ids) == 1 for ids in ids_per_pair.values()), "a deduplicated alert was sent again"

    ids_per_fingerprint: dict[str, set[str]] = {}
    for message in read_topics(settings, [settings.topic(ENRICHED)]):
        alert = alert_codec().decode(message.value())
        ids_per_fingerprint.setdefault(alert["fingerprint"], set()).add(alert["id"])
    assert len(ids_per_fingerprint) == len(originals)
    assert all(len(ids) == 1 for ids in ids_per_fingerprint.values())


@pytest.mark.parametrize("writer", ["clients", "process"])
def test_sigkill_mid_stream_loses_nothing(settings: Settings, pipeline: Pipeline, writer: str) -> None:
    """Kill the worker with SIGKILL while it works through a backlog, send more while it is
    down, and start it again on the same state volume: every (alert, member) pair is delivered,
    at least once, and every delivered alert is one that was owed. A writer process ends with
    its worker."""
    directory = Directory(generate_members(80, seed=6))
    pipeline.import_members(directory)
    feed = SampleFeed(list(directory), seed=33, duplicate_ratio=0.3, bad_ratio=0.01,
                      max_message_bytes=settings.max_message_bytes)  # fmt: skip
    before, during = feed.records(6000), feed.records(2000)
    worker = pipeline.start_worker("w0", member_topic_writer=writer)
    produce_feed(settings, before)
    wait_processing(worker, 1000)
    assert worker.process is not None
    children = process_tree(worker.process.pid)[1:]
    assert len(children) == (writer == "process")
    worker.kill()
    pipeline.workers.remove(worker)
    for child in children:
        assert ended_within(child, 60), "the writer process outlived its worker"
    produce_feed(settings, during)  # waits on the inputs while the worker is down and recovers

    again = pipeline.start_worker("w0", member_topic_writer=writer)
    wait_until_quiet(settings, again, len(before) + len(during))

    records = before + during
    expected_pairs, expected_dead = expected_outcome(records, directory, settings)
    got = delivered(settings)
    assert {(fp, member) for fp, member, _ in got} == expected_pairs, "an alert was lost or misrouted"
    dead = Counter(
        (m.value(), dict(m.headers())["cwn.error.field"].decode())
        for m in read_topics(settings, [settings.topic(DEADLETTER)])
    )
    assert set(dead) == set(expected_dead) and dead.total() >= expected_dead.total()
    counts = count_records(settings, [settings.topic(RAW), settings.topic(NORMALISED)])
    assert counts[settings.topic(NORMALISED)] >= len(records) - expected_dead.total()


def ended_within(pid: int, seconds: float) -> bool:
    """Whether process `pid` has ended (or is a zombie left to its new parent) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def with_new_id(value: bytes) -> bytes:
    return orjson.dumps(orjson.loads(value) | {"id": str(uuid.uuid4())})


def test_workers_join_and_leave_mid_stream(settings: Settings, pipeline: Pipeline) -> None:
    """Scale out and back in while records flow: a second worker joins a group over 8 partitions
    (partitions and their dedup table move to it), then the first leaves. Every owed (alert,
    member) pair is delivered, and repeats of alerts seen before the moves are still dropped."""
    # Its own namespace: the fixture's topics have 3 partitions.
    settings = settings.model_copy(update={"partitions": 8, "namespace": settings.namespace + "-p8"})
    ensure_topics(settings, pipeline_topics(settings))
    pipeline.settings = settings
    try:
        join_and_leave(settings, pipeline)
    finally:
        pipeline.stop()
        cleanup_namespace(settings, settings.namespace + ".")


def join_and_leave(settings: Settings, pipeline: Pipeline) -> None:
    directory = Directory(generate_members(80, seed=8))
    pipeline.import_members(directory)
    feed = SampleFeed(list(directory), seed=44, duplicate_ratio=0.3, bad_ratio=0.0,
                      max_message_bytes=settings.max_message_bytes)  # fmt: skip
    first, second, third = feed.records(4000), feed.records(3000), feed.records(3000)
    w0 = pipeline.start_worker("w0")
    produce_feed(settings, first)
    # Every alert of `first` is seen before the moves. (Raw partitions are read independently,
    # so a repeat sent while its original still waits in another partition may come first, and
    # then the original is the one dropped: that is dedup working, not what this test is about.)
    wait_processing(w0, len(first))
    w1 = pipeline.start_worker("w1")  # joins: the group rebalances while records wait
    produce_feed(settings, second)
    w0.stop()  # leaves: its partitions and their table move to w1
    pipeline.workers.remove(w0)
    repeats = [  # re-reports of alerts seen before the moves, each with a new id
        FeedRecord(with_new_id(r.value), r.headers, "duplicate", r.serial)
        for r in first
        if r.kind == "unique" and dict(r.headers)["format"] == b"alert-json"
    ]
    produce_feed(settings, third + repeats)
    records = first + second + third + repeats
    wait_until_quiet(settings, w1, len(records))

    expected_pairs, _ = expected_outcome(records, directory, settings)
    got = delivered(settings)
    assert {(fp, member) for fp, member, _ in got} == expected_pairs, "an alert was lost or misrouted"
    repeat_ids = {orjson.loads(r.value)["id"] for r in repeats}
    assert len(repeat_ids) > 1000
    assert not repeat_ids & {alert_id for _, _, alert_id in got}, "a repeat was delivered"
    ids_per_pair: dict[tuple[str, str], set[str]] = {}
    for fp, member, alert_id in got:
        ids_per_pair.setdefault((fp, member), set()).add(alert_id)
    assert all(len(ids) == 1 for ids in ids_per_pair.values()), "a member got one event twice"


def test_dedup_table_comes_back_from_its_changelog(settings: Settings, pipeline: Pipeline) -> None:
    """A worker that lost its local state (a new node, an empty volume) rebuilds the dedup table
    from the changelog: alerts it had seen before are still recognised as repeats."""
    directory = Directory(generate_members(60, seed=4))
    pipeline.import_members(directory)
    feed = SampleFeed(list(directory), seed=21, duplicate_ratio=0.3, bad_ratio=0.0,
                      max_message_bytes=settings.max_message_bytes)  # fmt: skip
    first = feed.records(3000)
    originals = sum(r.kind == "unique" for r in first)
    worker = pipeline.start_worker("w0")
    produce_feed(settings, first)
    wait_settled(settings, [worker], directory, len(first), timeout=300)
    deliveries_before = len(delivered(settings))
    worker.stop()
    pipeline.workers.remove(worker)
    shutil.rmtree(worker.settings.data_dir)

    again = pipeline.start_worker("w0")  # returns once the table is recovered
    changelog = dedup_changelog(settings)
    # The whole changelog was read back in bulk, not one event at a time through Faust.
    assert again.scrape()["cwn_dedup_restored_total"] == count_records(settings, [changelog])[changelog] > 0
    repeats = [FeedRecord(r.value, r.headers, "duplicate", r.serial) for r in first if r.kind == "unique"]
    produce_feed(settings, repeats)
    wait_until_quiet(settings, again, len(first) + len(repeats))

    assert again.scrape()["cwn_duplicates_total"] == len(repeats)
    assert count_records(settings, [settings.topic(ENRICHED)])[settings.topic(ENRICHED)] == originals
    assert len(delivered(settings)) == deliveries_before


def wait_processing(worker: Worker, records: int, timeout: float = 120) -> None:
    """Wait until the worker's dispatch stage has read at least `records` records."""
    deadline = time.monotonic() + timeout
    while worker.scrape().get('cwn_records_in_total{stage="dedupe"}', 0) < records:
        assert time.monotonic() < deadline, "the worker did not start processing"
        time.sleep(0.05)


def behind(settings: Settings) -> dict[tuple[str, int], int]:
    """Records of each input partition (raw and normalised) that the pipeline's group has not
    committed, from the broker."""
    inputs = [settings.topic(RAW), settings.topic(NORMALISED)]
    gauge = Gauge("lag", "lag", ["group", "topic", "partition"], registry=CollectorRegistry())
    monitor = LagMonitor(settings, settings.group_id, lambda: inputs, gauge)
    consumer = Consumer(client_config(settings) | {"group.id": settings.group_id})
    try:
        return {key: lag for key, (_, lag) in monitor.measure(consumer).items()}
    finally:
        consumer.close()


def wait_until_quiet(settings: Settings, worker: Worker, ingested: int, timeout: float = 300) -> None:
    """Wait until every raw record is normalised or dead-lettered, the group has committed
    every input record, and no stage's counters move for three seconds.

    The commits matter: counters also stand still while partitions move between workers,
    with normalised records waiting for their new owner.
    """
    topics = [
        settings.topic(RAW),
        settings.topic(NORMALISED),
        settings.topic(ENRICHED),
        settings.topic(DEADLETTER),
    ]
    exact = settings.processing_guarantee == "exactly_once"  # offsets also hold commit markers
    deadline = time.monotonic() + timeout
    previous, quiet = None, 0
    while quiet < 3:
        if time.monotonic() > deadline:
            worker.dump()
            raise TimeoutError(f"the pipeline did not settle: {previous}; see {worker.log_path}")
        counts = (count_committed if exact else count_records)(settings, topics)
        state = (counts, {k: v for k, v in worker.scrape().items() if k.startswith("cwn_records_")})
        done = (
            counts[topics[0]] == ingested
            and counts[topics[1]] + counts[topics[3]] >= ingested
            and all(lag <= (1 if exact else 0) for lag in behind(settings).values())
        )
        quiet = quiet + 1 if done and state == previous else 0
        previous = state
        time.sleep(1)


def test_a_more_severe_repeat_reaches_members_as_an_update(settings: Settings, pipeline: Pipeline) -> None:
    directory = Directory(generate_members(5, seed=1))
    owner = next(iter(directory))
    pipeline.import_members(directory)
    worker = pipeline.start_worker()
    victim = str(owner.constituency.cidrs[0].network_address + 7)
    base = {
        "time_observation": datetime.now(UTC).isoformat(),
        "feed": {"provider": "cwn-demo", "name": "ids-sensors"},
        "taxonomy": "intrusion-attempts",
        "type": "exploit",
        "identifier": "ET EXPLOIT test",
        "tlp": "AMBER",
        "source": {"ip": "203.0.113.5", "port": 40001},
        "destination": {"ip": victim, "port": 443},
    }
    headers = (("feed", b"cwn-demo/ids-sensors"), ("producer", b"cwn-demo"))
    sightings = [("medium", 40001), ("medium", 40002), ("critical", 40003), ("high", 40004)]
    records = [
        FeedRecord(orjson.dumps(base | {"severity": sev, "source": {"ip": "203.0.113.5", "port": port}}),
                   headers, "unique", n)
        for n, (sev, port) in enumerate(sightings)
    ]  # fmt: skip
    for record in records:  # one at a time: the order of sightings is the point
        produce_feed(settings, [record])
        wait_processing(worker, record.serial + 1)
    wait_until_quiet(settings, worker, len(records))

    received = [
        orjson.loads(m.value())
        for m in read_topics(settings, [f"{settings.topic('cwn.deliver.')}{owner.id}"])
    ]
    assert [(a["severity"], a["count"]) for a in received] == [("medium", 1), ("critical", 3)]
    assert received[0]["fingerprint"] == received[1]["fingerprint"], "an update names the event it updates"
    assert received[1]["first_seen"] == received[0]["time_observation"]
    metrics = worker.scrape()
    assert (metrics["cwn_updates_total"], metrics["cwn_duplicates_total"]) == (1, 2)
