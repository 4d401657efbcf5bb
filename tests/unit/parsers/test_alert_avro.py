from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.alert import Rejected
from pipeline.parsers import ParseContext
from pipeline.parsers.alert_avro import parse
from pipeline.serde import alert_codec
from tests.unit.strategies import valid_alert

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
CTX = ParseContext(feed="cert/ids", now=NOW)


def valid() -> dict:
    return valid_alert(tlp="GREEN")


def test_valid_avro_parses():
    alert = valid()
    (parsed,) = parse(alert_codec().encode(alert), CTX).alerts
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
