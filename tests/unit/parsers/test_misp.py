from datetime import UTC, datetime

import orjson

from pipeline.parsers.misp import parse
from tests.unit.parsers.samples import context, indicators, parse_sample, rejections

FEED = "sector-isac/misp"


def test_event_attributes_and_objects_become_indicators():
    parsed = parse_sample(FEED, "event-export.json")
    (alert,) = parsed.alerts
    assert (alert["taxonomy"], alert["type"]) == ("malicious-code", "malware-distribution"), (
        "from the rsit tag"
    )
    assert (alert["severity"], alert["confidence"], alert["tlp"]) == ("high", 90, "AMBER")
    assert alert["malware"] == {"name": "emotet", "hashes": {}}, "from the malpedia galaxy tag"
    assert alert["description"] == "Emotet wave targeting municipalities"
    assert alert["time_observation"] == datetime(2026, 11, 28, 8, 10, tzinfo=UTC)
    assert indicators(alert) == [
        ("url", "http://docs-share.example/inv/8812.doc"),
        ("domain", "mail.docs-share.example"),
        ("ipv4", "192.0.2.150"),
        ("ipv4", "198.51.100.150"),
        ("sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        ("email", "billing@docs-share.example"),
        ("cve", "CVE-2017-11882"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ], "to_ids only; deleted and organisation-only attributes left out"
    assert alert["references"] == ["https://cert-gov.example/emotet-2026-11"]
    assert alert["extra"]["misp_org"] == "CERT-Gov"
    assert rejections(parsed) == [
        ("Event.Attribute[8]", "Attribute.value"),
        ("Event.Object[0].Attribute[2]", "Attribute.value"),
    ]
    assert parsed.skipped == {"misp attribute distribution 0": 1}


def test_distribution_is_respected():
    parsed = parse_sample(FEED, "distributions.json")
    own, group = parsed.alerts
    assert (own["tlp"], own["recipients"]) == ("RED", ["isac-coordination"]), (
        "organisation only: the owner alone"
    )
    assert (own["taxonomy"], own["type"]) == ("intrusions", "system-compromise")
    assert (group["tlp"], group["sharing_groups"]) == ("AMBER", ["water-isac"]), "raised from CLEAR"
    assert (group["type"], group["severity"], group["confidence"]) == ("scanner", "low", 30)
    assert indicators(group) == [("ipv4", "203.0.113.45"), ("asn", "64511")]
    assert rejections(parsed) == [("events[2]", "timestamp"), ("events[3].Attribute[0]", "Attribute.value")]


def test_organisation_only_goes_nowhere_without_an_owner():
    event = {"Event": {"info": "x", "timestamp": "1795850000", "distribution": "0",
                       "Attribute": [{"type": "domain", "to_ids": True, "value": "a.example"}]}}  # fmt: skip
    ctx = context("ncsc/threat-intel")
    assert ctx.owner is None
    (alert,) = parse(orjson.dumps(event), ctx).alerts
    assert (alert["tlp"], alert["recipients"]) == ("RED", [])


def test_large_events_are_split_into_alerts_of_bounded_size():
    attributes = [
        {"type": "ip-dst", "to_ids": True, "value": f"198.51.{n // 256}.{n % 256}"} for n in range(1200)
    ]
    event = {"Event": {"info": "big", "timestamp": "1795850000", "Attribute": attributes}}
    alerts = parse(orjson.dumps(event), context(FEED)).alerts
    assert [len(a["indicators"]) for a in alerts] == [500, 500, 200]
