from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.alert import Rejected
from pipeline.parsers import ParseContext, sniff_format
from pipeline.parsers.alert_json import parse

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
CTX = ParseContext(feed="cert/ids", now=NOW)
ALERT = {
    "time_observation": "2026-11-29T11:00:00Z",
    "taxonomy": "malicious-code",
    "type": "c2-server",
    "indicators": [{"type": "domain", "value": "c2.example"}],
}


def test_feed_header_fills_missing_feed():
    (alert,) = parse(orjson.dumps(ALERT), CTX).alerts
    assert alert["feed"] == {"provider": "cert", "name": "ids", "partner": None}


def test_body_feed_stands_when_no_feed_is_declared():
    (alert,) = parse(orjson.dumps(ALERT | {"feed": {"provider": "a", "name": "b"}}), CTX).alerts
    assert alert["feed"]["provider"] == "a"


@pytest.mark.parametrize("payload", [b"", b"[1,2]", b"not json", b'"text"', b"{"])
def test_non_objects_are_rejected(payload):
    with pytest.raises(Rejected) as caught:
        parse(payload, CTX)
    assert caught.value.field == "payload"


@given(st.binary(max_size=300))
def test_any_bytes_give_alerts_or_rejection(data):
    try:
        assert parse(data, CTX)
    except Rejected as rejected:
        assert rejected.reason


def test_sniffing():
    assert sniff_format(b'  {"a":1}') == "alert-json"
    assert sniff_format(b"\xc3\x01abc") == "alert-avro"
    assert sniff_format(b"<xml/>") is None
