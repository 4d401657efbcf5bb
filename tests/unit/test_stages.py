"""The stages over a batch: what each gives to write and to count, against the per-record
functions they are made of."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.alert import Alert
from pipeline.asn import AsnDataset
from pipeline.dedupe import Seen, Verdict, observe_alert
from pipeline.demo.feed import SampleFeed, demo_feeds
from pipeline.directory import Directory, generate_members
from pipeline.enrich import enrich
from pipeline.normalise import Limits, normalise
from pipeline.routing import RoutingIndex, route
from pipeline.rules import EnrichmentRules
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.stages import dispatch_batch, normalise_batch
from pipeline.transactional import Polled

SETTINGS = Settings()
DIRECTORY = Directory(generate_members(60, seed=5))
NOW = datetime.now(UTC)


def raw_batch(count: int, bad_ratio: float, seed: int) -> list[Polled]:
    feed = SampleFeed(list(DIRECTORY), seed=seed, duplicate_ratio=0.3, bad_ratio=bad_ratio, now=NOW)
    return [
        Polled("cwn.alerts.raw", 0, n, None, r.value, list(r.headers))
        for n, r in enumerate(feed.records(count))
    ]


def test_normalise_batch_writes_each_alert_and_dead_letter_and_counts_them() -> None:
    messages = raw_batch(400, bad_ratio=0.05, seed=3)
    batch = normalise_batch(
        SETTINGS, messages, demo_feeds(), Limits(SETTINGS.max_message_bytes), NOW, alert_codec(), "out"
    )
    parsed = [
        normalise(m.value, dict(m.headers), demo_feeds(), Limits(SETTINGS.max_message_bytes), NOW)
        for m in messages
    ]
    alerts = sum(len(p.alerts) for p in parsed)
    rejected = sum(len(p.rejected) for p in parsed)
    assert rejected == 20 and alerts == 380
    assert batch.read == 400 and batch.alerts == alerts
    assert sum(r[0] == "out" for r in batch.records) == alerts
    assert sum(r[0] == SETTINGS.topic("cwn.deadletter") for r in batch.records) == rejected
    assert sum(batch.deadlettered.values()) == rejected
    assert sum(batch.outcomes.values()) == 400
    # Alerts are keyed by fingerprint, so repeats meet on one partition.
    codec = alert_codec()
    assert all(codec.decode(v)["fingerprint"].encode() == k for t, k, v, _ in batch.records if t == "out")


def normalised_batch(seed: int) -> list[Polled]:
    raw = raw_batch(300, bad_ratio=0.0, seed=seed)
    out = normalise_batch(
        SETTINGS, raw, demo_feeds(), Limits(SETTINGS.max_message_bytes), NOW, alert_codec(), "normalised"
    )
    return [Polled("normalised", 0, n, k, v, h) for n, (_, k, v, h) in enumerate(out.records)]


def test_dispatch_batch_forwards_first_sightings_and_routes_them() -> None:
    messages = normalised_batch(seed=8)
    index, codec = RoutingIndex(DIRECTORY), alert_codec()
    state: dict[bytes, bytes] = {}

    def sighting(i: int, alert: Alert) -> tuple[Seen, Verdict]:
        message = messages[i]
        seen, verdict = observe_alert(state.get(message.key), alert, (0, message.offset), 10**12)
        state[message.key] = seen.to_bytes()
        return seen, verdict

    batch = dispatch_batch(messages, sighting, codec, "enriched", index, EnrichmentRules(), AsnDataset())
    fingerprints = [codec.decode(m.value)["fingerprint"] for m in messages]
    assert len(set(fingerprints)) < len(messages), "the batch holds repeats"
    assert batch.read == len(messages) and batch.updates == 0
    assert [codec.decode(r[2])["fingerprint"] for r in batch.records] == list(dict.fromkeys(fingerprints))
    owed, first = [], set()
    for message in messages:
        alert = codec.decode(message.value)
        if alert["fingerprint"] not in first:
            first.add(alert["fingerprint"])
            owed += [(alert["fingerprint"], d.member_id) for d in route(enrich(alert, index), index)]
    assert owed and [(d.alert["fingerprint"], d.member_id) for d in batch.deliveries] == owed
    assert all(r[0] == "enriched" for r in batch.records)

    again = [
        Polled(m.topic, m.partition, m.offset + len(messages), m.key, m.value, m.headers) for m in messages
    ]
    messages = again
    repeat = dispatch_batch(again, sighting, codec, "enriched", index, EnrichmentRules(), AsnDataset())
    assert repeat.records == [] and repeat.deliveries == [], "a batch seen before gives only repeats"
