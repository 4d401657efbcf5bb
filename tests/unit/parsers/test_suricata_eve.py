from datetime import UTC, datetime

from tests.unit.parsers.samples import indicators, parse_sample, rejections

FEED = "ncsc/ids-sensors"


def test_alert_events_become_alerts_and_other_events_are_counted_skips():
    parsed = parse_sample(FEED, "mixed-sensor.jsonl")
    assert parsed.skipped == {"eve event_type flow": 1, "eve event_type stats": 1, "eve event_type dns": 1}
    assert parsed.rejected == []
    log4j, beacon, dns, scan = parsed.alerts

    assert (log4j["taxonomy"], log4j["type"], log4j["severity"], log4j["confidence"]) == (
        "intrusion-attempts", "exploit", "high", 85,
    )  # fmt: skip
    assert log4j["identifier"] == "ET EXPLOIT Apache log4j RCE Attempt (http ldap) (CVE-2021-44228)"
    assert log4j["time_observation"] == datetime(2026, 11, 29, 9, 21, 33, 123456, tzinfo=UTC)
    assert log4j["source"]["ip"] == "203.0.113.50" and log4j["source"]["port"] == 51234
    assert log4j["destination"]["fqdn"] == "portal.water-utility.example"
    assert log4j["destination"]["url"].startswith("http://portal.water-utility.example/login?user=")
    assert log4j["indicators"] == [], "the attacked host's name is the victim's, not an indicator"
    assert log4j["protocol"] == {"transport": "tcp", "application": "http"}
    assert (log4j["sensor"], log4j["origin"], log4j["tlp"]) == ("ids-rotterdam-01", "ids", "AMBER")
    assert log4j["extra"]["sid"] == "2034647" and log4j["extra"]["http_status"] == "404"

    assert (beacon["taxonomy"], beacon["type"], beacon["severity"]) == (
        "malicious-code",
        "infected-system",
        "high",
    )
    assert indicators(beacon) == [("domain", "cdn.update-check.example")]
    assert beacon["confidence"] == 70, "no confidence metadata: the feed's default"

    assert (dns["type"], dns["severity"]) == ("ids-alert", "medium")
    assert indicators(dns) == [("domain", "login-secure.bank-verify.top")]

    assert (scan["taxonomy"], scan["type"]) == ("information-gathering", "scanner")
    assert scan["source"]["ip"] == "2001:db8::99", "IPv6 compressed"
    assert scan["extra"]["action"] == "blocked"


def test_each_bad_line_is_rejected_alone():
    parsed = parse_sample(FEED, "broken-lines.jsonl")
    assert [a["identifier"] for a in parsed.alerts] == ["GPL ATTACK_RESPONSE id check returned root"]
    assert rejections(parsed) == [
        ("line 2", "source.ip"),
        ("line 3", "alert.signature"),
        ("line 4", "time_source"),
        ("line 5", "event"),
        ("line 6", "time_observation"),
    ]
    reasons = [r.reason for r in parsed.rejected]
    assert "not an IP address" in reasons[0]
    assert "no UTC offset" in reasons[2]
    assert "in the future" in reasons[4]
