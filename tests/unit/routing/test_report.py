"""`cwn route explain`: every way a member can be skipped, named."""

import ipaddress
from datetime import UTC, datetime

from pipeline.alert import build_alert
from pipeline.directory import Constituency, Directory, Member, Subscription
from pipeline.enrich import enrich
from pipeline.routing import RoutingIndex, route
from pipeline.routing.report import explain_report, reason_kind

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def member(member_id: str, *subs: Subscription, **fields) -> Member:
    return Member(
        id=member_id, name=member_id, sectors=fields.pop("sectors", ("energy",)), subscriptions=subs, **fields
    )


MEMBERS = Directory(
    [
        member("owner", constituency=Constituency(cidrs=(ipaddress.ip_network("10.1.0.0/16"),))),
        member("opted-out", receive_inside=False, constituency=Constituency(domains=("grid.example",))),
        member("addressee"),
        member("energy", Subscription(id="energy", sectors=("energy",))),
        member("no-subscriptions"),
        member("inside-only", Subscription(id="inside", inside_only=True)),
        member("other-sector", Subscription(id="water", sectors=("drinking-water",))),
        member("phishing-only", Subscription(id="phish", taxonomies=("fraud/phishing",))),
        member("critical-only", Subscription(id="critical", min_severity="critical")),
        member("sure-only", Subscription(id="sure", min_confidence=90)),
        member("other-feed", Subscription(id="feed", feeds=("abusech/urlhaus",))),
        member("hashes-only", Subscription(id="hashes", indicator_types=("sha256",))),
    ]
)
INDEX = RoutingIndex(MEMBERS)


def alert(tlp: str, **changes) -> dict:
    data = {
        "time_observation": "2026-11-29T11:00:00Z",
        "feed": {"provider": "ncsc", "name": "ids-sensors"},
        "taxonomy": "malicious-code",
        "type": "c2-server",
        "severity": "high",
        "confidence": 70,
        "tlp": tlp,
        "destination": {"ip": "10.1.2.3", "fqdn": "scada.grid.example"},
        "recipients": ["addressee"],
        "indicators": [{"type": "domain", "value": "c2.example"}],
    }
    return build_alert(data | changes, now=NOW)


def test_every_reason_a_member_is_skipped_is_named():
    report = explain_report(alert("GREEN"), INDEX, everyone=True)
    reasons = {d["member"]: d.get("reason") or d["rule"] for d in report["decisions"]}
    assert reasons == {
        "owner": "inside",
        "opted-out": "subscription: it has none",
        "addressee": "recipient",
        "energy": "subscription:energy",
        "no-subscriptions": "subscription: it has none",
        "inside-only": "subscription: inside: constituency: none of its assets are involved",
        "other-sector": "subscription: water: sectors drinking-water not concerned",
        "phishing-only": "subscription: phish: taxonomy malicious-code/c2-server not subscribed",
        "critical-only": "subscription: critical: severity high below critical",
        "sure-only": "subscription: sure: confidence 70 below 90",
        "other-feed": "subscription: feed: feed not subscribed",
        "hashes-only": "subscription: hashes: no indicator of a subscribed type",
    }
    assert report["alert"]["members_inside"] == ["opted-out", "owner"], "enriched as the pipeline does"
    assert report["not_receiving"] == {"constituency": 1, "subscription": 8}
    assert [r["member"] for r in report["receivers"]] == ["owner", "addressee", "energy"]


def test_tlp_reasons_and_the_report_agrees_with_route():
    for tlp, kinds in [
        ("AMBER", {"tlp": 9, "subscription": 1}),
        ("AMBER+STRICT", {"tlp": 9, "subscription": 1}),
        ("RED", {"tlp": 11}),
    ]:
        report = explain_report(alert(tlp), INDEX)
        assert report["not_receiving"] == kinds, tlp
        delivered = {d.member_id for d in route(enrich(alert(tlp), INDEX), INDEX)}
        assert (
            {r["member"] for r in report["receivers"]}
            == delivered
            == {"owner", "addressee"} - ({"owner"} if tlp == "RED" else set())
        )
    shared = explain_report(alert("AMBER", sharing_groups=["sector:energy"]), INDEX)
    assert {r["member"]: r["rule"] for r in shared["receivers"]} == {
        "owner": "inside", "addressee": "recipient", "energy": "subscription:energy",
    }  # fmt: skip


def test_one_member_in_full_and_an_unknown_one():
    report = explain_report(alert("RED"), INDEX, members=["energy", "nobody"])
    assert report["decisions"] == [
        {"member": "energy", "receives": False, "reason": "tlp: RED goes to explicit recipients only"},
        {"member": "nobody", "receives": False, "reason": "not in the directory"},
    ]


def test_reason_kinds():
    assert reason_kind("tlp: RED goes to explicit recipients only") == "tlp"
    assert reason_kind("subscription: a: constituency: none of its assets are involved") == "constituency"
    assert reason_kind("subscription: a: constituency: none; b: feed not subscribed") == "subscription"


def test_explain_command_with_a_directory_file(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import orjson

    root = Path(__file__).resolve().parents[3]
    alerts = [
        alert("AMBER", destination={"ip": "192.0.2.10"}, recipients=[]),
        alert("RED", destination=None, recipients=["stadtwerke-sud"]),
    ]
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(a) for a in alerts))
    command = [sys.executable, "-m", "pipeline.cli", "route", "explain", str(path), "--directory",
               str(root / "examples" / "members.yaml"), "--member", "nordgrid"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=60, cwd=root)
    assert done.returncode == 0, done.stderr
    first, second = (orjson.loads(line) for line in done.stdout.splitlines())
    assert first["receivers"] == [{"member": "nordgrid", "rule": "inside"}]
    assert first["decisions"] == [{"member": "nordgrid", "receives": True, "rule": "inside"}]
    assert second["receivers"] == [{"member": "stadtwerke-sud", "rule": "recipient"}]
    assert second["decisions"][0]["reason"] == "tlp: RED goes to explicit recipients only"

    bad = subprocess.run(
        [*command[:5], "-", *command[6:]], input=b'{"tlp": "PURPLE"}', capture_output=True, cwd=root
    )
    assert bad.returncode == 2 and b"alert 1" in bad.stderr


def test_a_suppressed_alert_reaches_nobody_and_says_why():
    from pipeline.rules import load_rules

    rules = load_rules("warninglists: [{id: resolvers, values: [9.9.9.9]}]")
    report = explain_report(
        alert("GREEN", indicators=[{"type": "ipv4", "value": "9.9.9.9"}]), INDEX, rules=rules
    )
    assert report["receivers"] == []
    assert report["not_receiving"] == {"warninglist": len(MEMBERS)}
    assert report["rules"]["suppressed_by"] == "resolvers"
