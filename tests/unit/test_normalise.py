from datetime import UTC, datetime

import orjson
import pytest

from pipeline.feeds import FeedRegistry, FeedSpec
from pipeline.normalise import Limits, normalise

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
LIMITS = Limits(max_message_bytes=2048)
FEEDS = FeedRegistry(
    [
        FeedSpec(id="cert/ids", format="alert-json", producers=("cert-sensor",), default_tlp="GREEN"),
        FeedSpec(id="cert/eve", format="suricata-eve", producers=("cert-sensor",)),
    ]
)
HEADERS = {"feed": b"cert/ids", "producer": b"cert-sensor"}
ALERT = {
    "time_observation": "2026-11-29T11:00:00Z",
    "feed": {"provider": "cert", "name": "ids"},
    "taxonomy": "intrusion-attempts",
    "type": "exploit",
}


def test_alert_gets_a_fingerprint_and_the_feed_default_tlp():
    parsed = normalise(orjson.dumps(ALERT), HEADERS | {"format": b"alert-json"}, FEEDS, LIMITS, NOW)
    (alert,) = parsed.alerts
    assert len(alert["fingerprint"]) == 32
    assert alert["tlp"] == "GREEN"
    assert parsed.outcome == "accepted"


def test_declared_format_applies_without_a_format_header():
    (alert,) = normalise(orjson.dumps(ALERT), HEADERS, FEEDS, LIMITS, NOW).alerts
    assert alert["feed"] == {"provider": "cert", "name": "ids", "partner": None}


@pytest.mark.parametrize(
    ("payload", "headers", "field", "reason"),
    [
        (None, {}, "payload", "empty record"),
        (b"x" * 3000, {}, "payload", "exceeds the limit of 2048"),
        (b"<x/>", {}, "payload", "not valid JSON"),
        (b"{}", {"format": b"yaml"}, "format", "declared as alert-json"),
        (b"{}", {"format": b"stix2"}, "format", "declared as alert-json"),
        (b"{}", {"producer": b"someone-else"}, "producer", "may not write feed cert/ids"),
        (b"{}", {"producer": b""}, "producer", "may not write feed cert/ids"),
        (b"{}", {"feed": b"cert/unknown"}, "feed", "is not declared"),
        (orjson.dumps(ALERT | {"feed": {"provider": "x", "name": "y"}}), {}, "feed", "names feed x/y"),
    ],
)
def test_whole_record_rejections_name_field_and_feed(payload, headers, field, reason):
    parsed = normalise(payload, HEADERS | headers, FEEDS, LIMITS, NOW)
    assert parsed.outcome == "rejected"
    (rejected,) = parsed.rejected
    assert rejected.field == field
    assert reason in rejected.reason
    assert rejected.feed == (HEADERS | headers)["feed"].decode()
    assert f"(feed {rejected.feed})" in str(rejected)


def test_a_record_without_a_feed_header_is_rejected_as_from_an_unknown_feed():
    (rejected,) = normalise(b"{}", {"producer": b"cert-sensor"}, FEEDS, LIMITS, NOW).rejected
    assert (rejected.field, rejected.feed) == ("feed", "unknown")


def test_items_fail_alone_and_skips_are_counted():
    scan = {"signature": "ET SCAN x", "category": "Detection of a Network Scan", "severity": 2}
    eve = [
        {"event_type": "flow", "timestamp": "2026-11-29T11:00:00Z"},
        {"event_type": "alert", "timestamp": "2026-11-29T11:00:00Z", "src_ip": "198.51.100.7",
         "dest_ip": "192.0.2.1", "alert": scan},
        {"event_type": "alert", "timestamp": "2026-11-29T11:00:00Z", "src_ip": "nope", "alert": scan},
    ]  # fmt: skip
    payload = b"\n".join(orjson.dumps(e) for e in eve)
    parsed = normalise(payload, {"feed": b"cert/eve", "producer": b"cert-sensor"}, FEEDS, LIMITS, NOW)
    assert parsed.outcome == "accepted"
    assert [a["type"] for a in parsed.alerts] == ["scanner"]
    (rejected,) = parsed.rejected
    assert (rejected.item, rejected.field, rejected.feed) == ("line 3", "source.ip", "cert/eve")
    assert parsed.skipped == {"eve event_type flow": 1}


def test_a_parser_failure_rejects_the_record_instead_of_raising(monkeypatch):
    from pipeline import parsers

    def broken(payload, context):
        raise KeyError("bug")

    monkeypatch.setitem(parsers.PARSERS, "alert-json", broken)
    (rejected,) = normalise(orjson.dumps(ALERT), HEADERS, FEEDS, LIMITS, NOW).rejected
    assert "parser failed" in rejected.reason


def test_the_writer_of_a_partners_own_topic_is_the_producer():
    without_header = {"feed": b"cert/ids"}
    (alert,) = normalise(orjson.dumps(ALERT), without_header, FEEDS, LIMITS, NOW, writer="cert-sensor").alerts
    assert alert["type"] == "exploit"
    same = normalise(orjson.dumps(ALERT), HEADERS, FEEDS, LIMITS, NOW, writer="cert-sensor")
    assert same.outcome == "accepted"


@pytest.mark.parametrize(
    ("headers", "writer", "reason"),
    [
        # a partner writes its own topic but claims to be the feed's real producer
        (HEADERS, "isac-bot", "claims producer 'cert-sensor' but was written by 'isac-bot'"),
        # a partner writes as itself, for a feed it does not produce
        ({"feed": b"cert/ids"}, "isac-bot", "producer 'isac-bot' may not write feed cert/ids"),
    ],
)
def test_a_partner_cannot_write_as_another(headers, writer, reason):
    parsed = normalise(orjson.dumps(ALERT), headers, FEEDS, LIMITS, NOW, writer=writer)
    (rejected,) = parsed.rejected
    assert rejected.field == "producer" and reason in rejected.reason and rejected.feed == "cert/ids"
    assert parsed.alerts == []
