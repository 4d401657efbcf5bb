"""Members and subscriptions through the control topics, live on a running worker."""

from __future__ import annotations

import ipaddress
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.control import (
    DirectoryView,
    publish_asn,
    publish_feeds,
    publish_members,
    publish_rules,
    read_directory,
    remove_member,
)
from pipeline.demo.feed import PRODUCER, FeedRecord, demo_feeds
from pipeline.demo.run import Worker, cleanup_namespace, member_topics, produce_feed
from pipeline.directory import Constituency, Directory, Member, Subscription
from pipeline.feeds import FeedRegistry, FeedSpec
from pipeline.kafka import ensure_topics, read_topics
from pipeline.rules import load_rules
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, pipeline_topics
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


def energy_member(member_id: str, n: int) -> Member:
    return Member(
        id=member_id,
        name=f"Energy {n}",
        sectors=("energy",),
        constituency=Constituency(cidrs=(ipaddress.ip_network(f"10.{n}.0.0/16"),)),
        subscriptions=(Subscription(id="energy", sectors=("energy",), min_severity="medium"),),
    )


def intel(serial: int) -> FeedRecord:
    alert = {
        "time_observation": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "feed": {"provider": "cwn-demo", "name": "sector-intel"},
        "taxonomy": "malicious-code",
        "type": "c2-server",
        "severity": "high",
        "tlp": "GREEN",
        "sectors": ["energy"],
        "indicators": [{"type": "domain", "value": f"c2-{serial}.example"}],
    }
    headers = (("format", b"alert-json"), ("feed", b"cwn-demo/sector-intel"), ("producer", PRODUCER.encode()))
    return FeedRecord(orjson.dumps(alert), headers, "unique", serial)


def receivers(settings: Settings) -> dict[str, set[str]]:
    """member -> the indicator values it received."""
    prefix = len(settings.topic("cwn.deliver."))
    out: dict[str, set[str]] = {}
    for message in read_topics(settings, member_topics(settings)):
        alert = orjson.loads(message.value())
        out.setdefault(message.topic()[prefix:], set()).add(alert["indicators"][0]["value"])
    return out


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.3)


def wait_directory_version(worker: Worker, version: int) -> None:
    wait_for(lambda: worker.scrape().get("cwn_directory_version", 0) >= version)


def test_import_and_read_back(settings: Settings) -> None:
    members = [energy_member(f"e{n}", n) for n in range(5)]
    summary = publish_members(settings, members)
    assert summary == {"members": 5, "subscriptions": 5, "topics_created": 5, "members_removed": 0,
                       "subscriptions_removed": 0}  # fmt: skip
    assert list(read_directory(settings)) == members
    assert publish_members(settings, members)["topics_created"] == 0  # idempotent


def test_a_view_outlasts_missing_control_topics_and_reads_them_once_made(settings: Settings) -> None:
    """A worker started before the control topics exist (the import Job has not run) is not
    ready and says why, and it reads the directory once it is imported: it never gives up."""
    early = settings.model_copy(update={"namespace": f"{settings.namespace}-early"})  # no topics yet
    view = DirectoryView(early)
    failures: list[str | None] = []
    view.on_failure = lambda: failures.append(view.failure)
    view.start()
    try:
        with pytest.raises(TimeoutError, match=r"last error: LookupError: topics not found.*-early\.cwn"):
            view.require_ready(3)
        assert failures and view.failures == len(failures)
        members = [energy_member(f"e{n}", n) for n in range(3)]
        ensure_topics(early, pipeline_topics(early))
        publish_members(early, members)
        view.require_ready(60)  # it may be ready between the topics and the import: then it follows
        wait_for(lambda: list(view.index.directory) == members)
    finally:
        view.stop()
        cleanup_namespace(early, early.namespace + ".")


def test_changes_apply_live_without_restart(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.import_members(Directory([energy_member("e1", 1), energy_member("e2", 2)]))
    worker = pipeline.start_worker()
    produce_feed(settings, [intel(1)])
    wait_for(lambda: receivers(settings) == {"e1": {"c2-1.example"}, "e2": {"c2-1.example"}})

    version = worker.scrape()["cwn_directory_version"]
    publish_members(settings, [energy_member("e3", 3)])
    wait_directory_version(worker, version + 1)
    produce_feed(settings, [intel(2)])
    wait_for(lambda: receivers(settings).get("e3") == {"c2-2.example"})

    version = worker.scrape()["cwn_directory_version"]
    remove_member(settings, energy_member("e2", 2))
    wait_directory_version(worker, version + 1)
    assert worker.scrape()["cwn_directory_members"] == 2
    produce_feed(settings, [intel(3)])
    wait_for(lambda: "c2-3.example" in receivers(settings).get("e1", set()))
    got = receivers(settings)
    assert got["e2"] == {"c2-1.example", "c2-2.example"}, "a removed member received an alert"
    assert got["e3"] == {"c2-2.example", "c2-3.example"}

    # A subscription raised to critical stops high-severity alerts for that member.
    version = worker.scrape()["cwn_directory_version"]
    stricter = energy_member("e1", 1).model_copy(
        update={"subscriptions": (Subscription(id="energy", sectors=("energy",), min_severity="critical"),)}
    )
    publish_members(settings, [stricter], current=read_directory(settings))
    wait_directory_version(worker, version + 1)
    produce_feed(settings, [intel(4)])
    wait_for(lambda: "c2-4.example" in receivers(settings).get("e3", set()))
    assert "c2-4.example" not in receivers(settings)["e1"]


def test_invalid_directory_keeps_the_last_valid_one(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.import_members(Directory([energy_member("e1", 1)]))
    worker = pipeline.start_worker()
    wait_directory_version(worker, 1)
    version = worker.scrape()["cwn_directory_version"]
    # Written around the import's validation: a second member claiming e1's network.
    publish_members(settings, [energy_member(f"x{uuid.uuid4().hex[:6]}", 1)])
    time.sleep(2)
    assert worker.scrape()["cwn_directory_version"] == version
    assert worker.scrape()["cwn_directory_members"] == 1


def test_feed_registry_changes_apply_live(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.import_members(Directory([energy_member("e1", 1)]))
    # The new feed's producer gets a topic of its own, which a worker restarts to read; these
    # records go through the shared raw topic, and the one worker is to apply the change live.
    worker = pipeline.start_worker(restart_for_new_topics=False)
    partner = FeedSpec(id="partner/intel", format="alert-json", producers=("partner-gw",))

    def record(serial: int) -> FeedRecord:
        alert = orjson.loads(intel(serial).value) | {"feed": {"provider": "partner", "name": "intel"}}
        headers = (("feed", b"partner/intel"), ("producer", b"partner-gw"))
        return FeedRecord(orjson.dumps(alert), headers, "unique", serial)

    def dead_fields() -> list[str]:
        dead = read_topics(settings, [settings.topic(DEADLETTER)])
        return [dict(m.headers())["cwn.error.field"].decode() for m in dead]

    produce_feed(settings, [record(10)])
    wait_for(lambda: dead_fields() == ["feed"])

    version = worker.scrape()["cwn_directory_version"]
    with_partner = FeedRegistry([*demo_feeds(), partner])
    publish_feeds(settings, with_partner)
    wait_directory_version(worker, version + 1)
    produce_feed(settings, [record(11)])
    wait_for(lambda: receivers(settings).get("e1") == {"c2-11.example"})

    version = worker.scrape()["cwn_directory_version"]
    summary = publish_feeds(settings, demo_feeds(), current=with_partner)
    assert summary == {"feeds": 6, "feeds_removed": 1, "partner_topics_created": 0}
    wait_directory_version(worker, version + 1)
    produce_feed(settings, [record(12)])
    wait_for(lambda: dead_fields() == ["feed", "feed"])
    assert receivers(settings)["e1"] == {"c2-11.example"}


def test_enrichment_rules_apply_live(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.import_members(Directory([energy_member("e1", 1)]))
    worker = pipeline.start_worker()
    version = worker.scrape()["cwn_directory_version"]
    rules = load_rules("warninglists: [{id: resolvers, values: [c2-20.example, c2-21.example]}]")
    assert publish_rules(settings, rules) == {"warninglists": 1, "watchlist": 0, "severity_rules": 0}
    wait_directory_version(worker, version + 1)
    produce_feed(settings, [intel(20), intel(21)])
    key = 'cwn_enrichment_rule_effects_total{effect="suppressed",rule="resolvers"}'
    wait_for(lambda: worker.scrape().get(key) == 2)
    assert receivers(settings) == {}, "suppressed alerts reach nobody"


def test_an_asn_dataset_loads_live_and_fills_endpoints(settings: Settings, pipeline: Pipeline) -> None:
    pipeline.import_members(Directory([energy_member("e1", 1)]))
    worker = pipeline.start_worker()
    version = worker.scrape()["cwn_directory_version"]
    sample = Path(__file__).resolve().parents[1] / "samples" / "ip2asn" / "ip2asn-combined-sample.tsv"
    manifest = publish_asn(settings, sample.read_text())
    assert (manifest["ranges"], manifest["chunks"]) == (5, 1)
    wait_directory_version(worker, version + 1)
    record = intel(30)
    alert = orjson.loads(record.value) | {"source": {"ip": "45.0.7.7"}}
    produce_feed(settings, [FeedRecord(orjson.dumps(alert), record.headers, "unique", 30)])
    wait_for(lambda: "e1" in receivers(settings))
    (message,) = read_topics(settings, [f"{settings.topic('cwn.deliver.')}e1"])
    source = orjson.loads(message.value())["source"]
    assert (source["asn"], source["cc"], source["as_name"]) == (
        64496,
        "NL",
        "EXAMPLE-TRANSIT Example Transit B.V.",
    )
