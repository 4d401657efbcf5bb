from datetime import UTC, datetime

import orjson
import pytest

from pipeline.parsers.stix2 import parse, pattern_indicators
from pipeline.rejected import Rejected
from tests.unit.parsers.samples import context, indicators, parse_sample, rejections

FEED = "ncsc/threat-intel"
MD5 = [("md5", "d41d8cd98f00b204e9800998ecf8427e")]


def test_bundle_indicators_sightings_and_observed_data():
    parsed = parse_sample(FEED, "campaign-bundle.json")
    assert parsed.skipped == {
        "stix indicator expired": 1,
        "stix indicator revoked": 1,
        "stix pattern not in the stix language": 1,
        "stix indicator benign": 1,
    }
    assert rejections(parsed) == [("objects[12]", "pattern")]
    c2, dropper, phishing, sighting, observed = parsed.alerts

    assert (c2["taxonomy"], c2["type"], c2["tlp"], c2["confidence"]) == (
        "malicious-code",
        "c2-server",
        "GREEN",
        85,
    )
    assert indicators(c2) == [
        ("ipv4", "192.0.2.201"),
        ("domain", "update-cdn.example"),
        ("ipv6", "2001:db8::beef"),
    ]
    assert c2["malware"]["name"] == "qakbot", "from the indicates relationship"
    assert c2["identifier"] == "QakBot C2 servers"
    assert c2["references"] == ["https://cert.example/advisories/2026-311"]
    assert c2["time_observation"] == datetime(2026, 11, 29, 8, tzinfo=UTC)

    assert dropper["tlp"] == "AMBER", "TLP 2.0 marking definition id"
    assert indicators(dropper) == [
        ("sha256", "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f")
    ]
    assert dropper["type"] == "malware-configuration"

    assert (phishing["taxonomy"], phishing["type"], phishing["tlp"]) == ("fraud", "phishing", "AMBER+STRICT")
    assert indicators(phishing) == [("url", "https://secure-login.bank-verify.example/account")], "refanged"

    assert sighting["count"] == 14
    assert sighting["first_seen"] == datetime(2026, 11, 29, 8, 10, tzinfo=UTC)
    assert sighting["last_seen"] == datetime(2026, 11, 29, 8, 55, tzinfo=UTC)
    assert indicators(sighting) == indicators(c2) and sighting["tlp"] == "GREEN", "the sighted indicator's"

    assert observed["tlp"] == "AMBER", "TLP 1.0 marking definition id"
    assert (observed["source"]["ip"], observed["source"]["port"]) == ("10.20.0.77", 49822)
    assert (observed["destination"]["ip"], observed["destination"]["port"]) == ("192.0.2.201", 443)
    assert observed["indicators"] == [], "traffic endpoints are where it was seen, not indicators"
    assert observed["count"] == 3


def test_a_bare_indicator_with_email_patterns():
    (alert,) = parse_sample(FEED, "single-indicator.json").alerts
    assert (alert["taxonomy"], alert["type"], alert["tlp"]) == ("fraud", "phishing", "GREEN")
    assert indicators(alert) == [
        ("email", "billing@invoice-portal.example"),
        ("email", "hr@payroll-update.example"),
    ]


def test_unmarked_objects_take_the_feed_default_and_named_markings_count():
    marking = {"type": "marking-definition", "id": "marking-definition--00000000-0000-4000-8000-000000000001",
               "name": "TLP:AMBER+STRICT", "extensions": {}}  # fmt: skip
    indicator = {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000002",
                 "modified": "2026-11-29T10:00:00Z", "pattern": "[ipv4-addr:value = '192.0.2.9']",
                 "pattern_type": "stix"}  # fmt: skip
    marked = indicator | {"object_marking_refs": [marking["id"]]}
    bundle = {"type": "bundle", "objects": [marking, indicator, marked]}
    plain, strict = parse(orjson.dumps(bundle), context(FEED)).alerts
    assert (plain["tlp"], strict["tlp"]) == ("GREEN", "AMBER+STRICT")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[ipv4-addr:value = '198.51.100.1']", [("ipv4", "198.51.100.1")]),
        ("[url:value = 'http://x.example/a''b']", []),
        ("[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']", MD5),
        ("[ipv4-addr:value ISSUBSET '198.51.100.0/24']", []),
        ("[domain-name:value = 'a.example'] FOLLOWEDBY [domain-name:value = 'b.example']",
         [("domain", "a.example"), ("domain", "b.example")]),
        ("[network-traffic:dst_ref.value = '192.0.2.1' AND network-traffic:dst_port = 443]",
         [("ip", "192.0.2.1")]),
    ],
)  # fmt: skip
def test_pattern_comparisons(pattern, expected):
    try:
        got = pattern_indicators(pattern)
    except Rejected:
        got = []
    assert [(i["type"], i["value"]) for i in got] == expected


def test_not_a_bundle_is_rejected():
    with pytest.raises(Rejected) as caught:
        parse(b'{"objects": []}', context(FEED))
    assert caught.value.field == "type"
