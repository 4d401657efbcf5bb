from collections import Counter
from datetime import UTC, datetime

from pipeline.demo.feed import BAD_FIELDS, SampleFeed, demo_feeds
from pipeline.directory import generate_members
from pipeline.normalise import Limits, normalise

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
FEEDS = demo_feeds()


def test_feed_ratios_and_ground_truth():
    feed = SampleFeed(generate_members(50), now=NOW, max_message_bytes=4096)
    records = feed.records(1000)
    kinds = Counter("bad" if r.serial < 0 else r.kind for r in records)
    assert kinds == {"unique": 690, "duplicate": 300, "bad": 10}
    seen = {}
    for record in records:
        parsed = normalise(record.value, dict(record.headers), FEEDS, Limits(4096), NOW)
        if parsed.rejected:
            (rejected,) = parsed.rejected
            assert record.serial < 0
            assert rejected.field == BAD_FIELDS[record.kind]
            continue
        (alert,) = parsed.alerts
        if record.kind == "unique":
            assert alert["fingerprint"] not in seen
            seen[alert["fingerprint"]] = record.serial
        else:
            assert seen[alert["fingerprint"]] == record.serial


def test_feed_is_deterministic():
    members = generate_members(10)
    a = SampleFeed(members, seed=3, now=NOW).records(50)
    b = SampleFeed(members, seed=3, now=NOW).records(50)
    assert [r.value for r in a] == [r.value for r in b]


def test_later_rounds_bring_new_alerts():
    feed = SampleFeed(generate_members(20), now=NOW, bad_ratio=0.0)
    fingerprints = []
    for _ in range(2):
        round_ = set()
        for record in feed.records(200):
            (alert,) = normalise(record.value, dict(record.headers), FEEDS, Limits(512 * 1024), NOW).alerts
            round_.add(alert["fingerprint"])
        fingerprints.append(round_)
    assert not fingerprints[0] & fingerprints[1]


def test_distinct_events_never_share_a_fingerprint():
    """Whatever fields a type's fingerprint covers, the feed's unique alerts stay distinct, so the
    count of repeats the tests expect is exact."""
    feed = SampleFeed(generate_members(10), now=NOW, bad_ratio=0.0, duplicate_ratio=0.0)
    fingerprints = [
        normalise(r.value, dict(r.headers), FEEDS, Limits(512 * 1024), NOW).alerts[0]["fingerprint"]
        for r in feed.records(5000)
    ]
    assert len(set(fingerprints)) == 5000
