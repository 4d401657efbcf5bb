"""Every input format through the real broker: counts balance, and each rejection is on the
dead-letter topic with the original bytes, its field, reason, feed and location."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from pipeline.demo.feed import SampleFeed, demo_feeds
from pipeline.demo.run import produce_feed, wait_settled
from pipeline.directory import Directory, generate_members
from pipeline.feeds import FeedRegistry
from pipeline.kafka import read_topics
from pipeline.normalise import Limits, normalise
from pipeline.partner.records import split_records
from pipeline.partner.sdk import FeedProducer
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, RAW
from tests.integration.conftest import Pipeline
from tests.unit.parsers.samples import NOW, SAMPLES, registry, shift_times

pytestmark = pytest.mark.integration

#: Each sample file and the feed it is sent as.
SAMPLE_FEEDS = {
    "suricata-eve/mixed-sensor.jsonl": "ncsc/ids-sensors",
    "suricata-eve/broken-lines.jsonl": "ncsc/ids-sensors",
    "intelmq/shadowserver-and-abusech.jsonl": "shadowserver/drone",
    "intelmq/rejects.jsonl": "shadowserver/drone",
    "cef/firewall-and-ids.log": "soc-partner/siem",
    "cef/rejects.log": "soc-partner/siem",
    "csv/urlhaus-recent.csv": "abusech/urlhaus",
    "csv/c2-ip-blocklist.csv": "abusech/c2-ips",
    "csv/scan-report.csv": "shadowserver/scan-rdp-smb",
    "stix2/campaign-bundle.json": "ncsc/threat-intel",
    "stix2/single-indicator.json": "ncsc/threat-intel",
    "misp/event-export.json": "sector-isac/misp",
    "misp/distributions.json": "sector-isac/misp",
}


def test_mixed_corpus_of_every_format(settings: Settings, pipeline: Pipeline) -> None:
    feeds = FeedRegistry([*registry(), *demo_feeds()])
    directory = Directory(generate_members(60, seed=3))
    pipeline.import_members(directory, feeds)
    worker = pipeline.start_worker()

    delta = datetime.now(UTC) - NOW  # samples are written for NOW; send them as of today
    sent: list[tuple[bytes, dict[str, bytes]]] = []
    for name, feed in SAMPLE_FEEDS.items():
        spec = feeds.get(feed)
        assert spec is not None
        data = shift_times((SAMPLES / name).read_bytes(), delta)
        with FeedProducer(settings.bootstrap, feed, spec.producers[0], topic=settings.topic(RAW)) as out:
            for record in split_records(data, spec.format):
                out.send(record.value)
                sent.append((record.value, {"feed": feed.encode(), "producer": spec.producers[0].encode()}))
        summary = out.summary()
        assert (summary.acknowledged, summary.failed) == (summary.sent, 0), summary.errors

    native = SampleFeed(list(directory), seed=4, max_message_bytes=settings.max_message_bytes).records(300)
    impostors = [
        (b'{"taxonomy": "test", "type": "test"}', {"feed": b"nobody/unknown", "producer": b"x"}),
        ((SAMPLES / "cef/firewall-and-ids.log").read_bytes().splitlines()[1],
         {"feed": b"soc-partner/siem", "producer": b"feed-fetcher"}),
    ]  # fmt: skip
    produce_feed(settings, native)
    for value, headers in impostors:
        with FeedProducer(settings.bootstrap, headers["feed"].decode(), headers["producer"].decode(),
                          topic=settings.topic(RAW)) as out:  # fmt: skip
            out.send(value)
    sent += [(r.value, dict(r.headers)) for r in native] + impostors

    # What the pipeline must do, from the pure function it runs.
    now = datetime.now(UTC)
    outcomes: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    expected_dead: Counter[tuple[bytes, str, str, str]] = Counter()
    alerts = 0
    for value, headers in sent:
        parsed = normalise(value, headers, feeds, Limits(settings.max_message_bytes), now)
        outcomes[parsed.outcome] += 1
        skipped.update(parsed.skipped)
        alerts += len(parsed.alerts)
        for r in parsed.rejected:
            expected_dead[(value, r.field, r.item, r.feed)] += 1
    assert outcomes["accepted"] > 300 and outcomes["rejected"] >= 20 and skipped

    counts = wait_settled(settings, [worker], directory, len(sent), timeout=300)
    assert counts.lost == 0 and counts.settled(), counts.as_dict()
    assert (counts.ingested, counts.accepted, counts.skipped, counts.rejected) == (
        len(sent), outcomes["accepted"], outcomes["skipped"], outcomes["rejected"],
    )  # fmt: skip
    assert counts.normalised == alerts
    assert counts.deadlettered == sum(expected_dead.values())

    got_dead: Counter[tuple[bytes, str, str, str]] = Counter()
    for message in read_topics(settings, [settings.topic(DEADLETTER)]):
        h = {k: v.decode() for k, v in message.headers()}
        assert h["cwn.error.reason"] and h["cwn.error.stage"] == "normalise"
        got_dead[(message.value(), h["cwn.error.field"], h["cwn.error.item"], h["cwn.error.feed"])] += 1
    assert got_dead == expected_dead
    assert ("producer" in {field for _, field, _, _ in got_dead}) and (
        "feed" in {f for _, f, _, _ in got_dead}
    )

    metrics = worker.scrape()
    assert {
        k.split('"')[1]: int(v) for k, v in metrics.items() if k.startswith("cwn_skipped_items_total{")
    } == skipped
