from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.alert import Rejected, build_alert, canonical_tlp
from pipeline.observables import canonical_ip
from tests.unit.strategies import alert_data

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


minimal = alert_data


def test_minimal_alert_gets_defaults():
    alert = build_alert(minimal(), now=NOW)
    assert alert["tlp"] == "AMBER"
    assert alert["severity"] == "medium"
    assert alert["schema_version"] == 1
    assert alert["time_observation"] == datetime(2026, 11, 29, 11, tzinfo=UTC)
    assert len(alert["id"]) == 36


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"taxonomy": None}, "taxonomy", "required field is missing"),
        ({"confidence": "high"}, "confidence", "expected an integer"),
        ({"confidence": 101}, "confidence", "must be 0-100"),
        ({"tlp": "PURPLE"}, "tlp", "unknown TLP label"),
        ({"source": {"ip": "300.1.1.1"}}, "source.ip", "not an IP address"),
        ({"source": {"port": 70000}}, "source.port", "must be 0-65535"),
        ({"taxonomy": "malware"}, "taxonomy", "not an RSIT class"),
        ({"type": "c2-server"}, "type", "not an RSIT type of intrusion-attempts"),
        ({"severity": "urgent"}, "severity", "is not one of"),
        ({"time_observation": "yesterday"}, "time_observation", "not an RFC 3339 time"),
        ({"time_observation": "2026-11-29T11:00:00"}, "time_observation", "no UTC offset"),
        ({"time_observation": "2026-11-30T11:00:00Z"}, "time_observation", "in the future"),
        ({"time_observation": "2020-01-01T00:00:00Z"}, "time_observation", "older than"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"feed": {"provider": "x"}}, "feed.name", "required field is missing"),
        ({"indicators": [{"type": "ipv4", "value": "1.2.3"}]}, "indicators[0].value", "not an IP"),
        ({"id": "not-a-uuid"}, "id", "not a UUID"),
        ({"description": "x" * 5000}, "description", "longer than"),
    ],
)
def test_rejections_name_the_field(changes, field, reason):
    with pytest.raises(Rejected) as caught:
        build_alert(minimal(**changes), now=NOW)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_canonicalisation():
    alert = build_alert(
        minimal(source={"ip": "2001:DB8:0:0:0:0:0:1", "fqdn": "WWW.Example.ORG."}, tlp="tlp:white"), now=NOW
    )
    assert alert["source"]["ip"] == "2001:db8::1"
    assert alert["source"]["fqdn"] == "www.example.org"
    assert alert["tlp"] == "CLEAR"


def test_control_characters_are_removed():
    alert = build_alert(minimal(description="line\x1b[31m red\x00"), now=NOW)
    assert alert["description"] == "line[31m red"


@pytest.mark.parametrize(
    ("label", "level"),
    [("WHITE", "CLEAR"), ("clear", "CLEAR"), ("TLP:AMBER+STRICT", "AMBER+STRICT"), ("red", "RED")],
)
def test_tlp_labels(label, level):
    assert canonical_tlp(label) == level


def test_epoch_seconds_are_accepted():
    moment = NOW - timedelta(hours=1)
    assert build_alert(minimal(time_observation=moment.timestamp()), now=NOW)["time_observation"] == moment


def test_canonical_ip_rejects_garbage():
    with pytest.raises(Rejected):
        canonical_ip("1.2.3.4.5", "x")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from([*list(minimal()), "source", "tlp", "severity", "x"]), json_values))
def test_any_mapping_builds_or_is_rejected(data):
    try:
        build_alert(data, now=NOW)
    except Rejected as rejected:
        assert rejected.field and rejected.reason
