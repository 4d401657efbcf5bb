import orjson
from hypothesis import given
from hypothesis import strategies as st
from stix2patterns.validator import validate

from connectors.core import Delivery
from connectors.stix import IDENTITY_ID, identity, pattern, to_stix
from pipeline.parsers.stix2 import parse
from tests.unit.connectors.deliveries import member_alert
from tests.unit.parsers.samples import context


def test_an_alert_with_indicators_is_an_indicator_our_parser_reads_back():
    alert = member_alert(
        5,
        tlp="AMBER+STRICT",
        indicators=[
            {"type": "ipv4", "value": "203.0.113.6"},
            {"type": "domain", "value": "evil.example"},
            {"type": "sha256", "value": "a" * 64},
            {"type": "cve", "value": "CVE-2024-3400"},
        ],
    )
    obj = to_stix(Delivery("m1", "inside", alert))
    assert obj["type"] == "indicator" and validate(obj["pattern"], "2.1")
    assert obj["external_references"] == [{"source_name": "cve", "external_id": "CVE-2024-3400"}]
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [identity(), obj]}
    parsed = parse(orjson.dumps(bundle), context("ncsc/threat-intel"))
    assert not parsed.rejected, parsed.rejected
    (back,) = parsed.alerts
    assert back["tlp"] == "AMBER+STRICT"
    assert {(i["type"], i["value"]) for i in back["indicators"]} == {
        ("ipv4", "203.0.113.6"),
        ("domain", "evil.example"),
        ("sha256", "a" * 64),
    }


def test_the_same_alert_is_the_same_object():
    alert = member_alert(1)
    assert to_stix(Delivery("m1", "r", alert))["id"] == to_stix(Delivery("m1", "r", dict(alert)))["id"]
    assert to_stix(Delivery("m1", "r", alert))["created_by_ref"] == IDENTITY_ID


def test_an_alert_about_a_victim_is_an_incident_not_an_indicator():
    alert = member_alert(2, taxonomy="vulnerable", type="vulnerable-system", indicators=[])
    obj = to_stix(Delivery("m1", "inside", alert))
    assert obj["type"] == "incident"
    assert obj["x_cwn_source"]["ip"] == alert["source"]["ip"]
    assert "pattern" not in obj


@given(st.text(max_size=40).filter(lambda v: v.strip()))
def test_patterns_quote_any_value(value):
    expression = pattern([{"type": "url", "value": value}])
    assert validate(expression, "2.1"), expression
