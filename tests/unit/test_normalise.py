from datetime import UTC, datetime

import orjson
import pytest

from pipeline.alert import Rejected
from pipeline.normalise import Limits, normalise

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
LIMITS = Limits(max_message_bytes=2048)
ALERT = {
    "time_observation": "2026-11-29T11:00:00Z",
    "feed": {"provider": "cert", "name": "ids"},
    "taxonomy": "intrusion-attempts",
    "type": "exploit",
}


def test_alert_gets_a_fingerprint():
    (alert,) = normalise(orjson.dumps(ALERT), {"format": b"alert-json"}, LIMITS, NOW)
    assert len(alert["fingerprint"]) == 32


@pytest.mark.parametrize(
    ("payload", "headers", "field", "reason"),
    [
        (None, {}, "payload", "empty record"),
        (b"x" * 3000, {}, "payload", "exceeds the limit of 2048"),
        (b"<x/>", {}, "format", "no format header"),
        (b"{}", {"format": b"yaml"}, "format", "unsupported format 'yaml'"),
    ],
)
def test_rejections(payload, headers, field, reason):
    with pytest.raises(Rejected) as caught:
        normalise(payload, headers | {"feed": b"cert/ids"}, LIMITS, NOW)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert caught.value.feed == "cert/ids"
    assert "(feed cert/ids)" in str(caught.value)


def test_unknown_feed_is_named_as_such():
    with pytest.raises(Rejected) as caught:
        normalise(b"nope", {"format": b"alert-json"}, LIMITS, NOW)
    assert caught.value.feed == "unknown"


def test_missing_tlp_takes_the_default():
    (alert,) = normalise(orjson.dumps(ALERT), {}, Limits(4096, default_tlp="GREEN"), NOW)
    assert alert["tlp"] == "GREEN"
