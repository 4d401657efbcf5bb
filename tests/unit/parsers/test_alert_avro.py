from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.alert import Rejected, build_alert
from pipeline.parsers import ParseContext
from pipeline.parsers.alert_avro import parse
from pipeline.serde import alert_codec

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
CTX = ParseContext(feed="cert/ids", now=NOW)


def valid() -> dict:
    return build_alert(
        {
            "time_observation": "2026-11-29T11:00:00Z",
            "feed": {"provider": "cert", "name": "ids"},
            "taxonomy": "intrusion-attempts",
            "type": "exploit",
            "tlp": "GREEN",
        },
        now=NOW,
    )


def test_valid_avro_parses():
    alert = valid()
    (parsed,) = parse(alert_codec().encode(alert), CTX)
    assert parsed == alert


def test_avro_is_checked_like_json():
    bad = valid() | {"taxonomy": "not-rsit"}
    with pytest.raises(Rejected) as caught:
        parse(alert_codec().encode(bad), CTX)
    assert caught.value.field == "taxonomy"


def test_avro_with_bad_ip_is_rejected():
    bad = valid() | {
        "source": {
            "ip": "999.0.0.1",
            "port": None,
            "fqdn": None,
            "url": None,
            "asn": None,
            "as_name": None,
            "cc": None,
        }
    }
    with pytest.raises(Rejected) as caught:
        parse(alert_codec().encode(bad), CTX)
    assert caught.value.field == "source.ip"


@given(st.binary(max_size=300))
def test_any_bytes_give_alerts_or_rejection(data):
    try:
        parse(b"\xc3\x01" + alert_codec().fingerprint + data, CTX)
    except Rejected as rejected:
        assert rejected.field
