from tests.unit.parsers.samples import indicators, parse_sample, rejections

FEED = "shadowserver/drone"


def test_harmonised_events_old_and_new_taxonomy():
    parsed = parse_sample(FEED, "shadowserver-and-abusech.jsonl")
    assert parsed.rejected == [] and not parsed.skipped
    drone, c2, phishing, vulnerable, blocklist = parsed.alerts

    assert (drone["taxonomy"], drone["type"]) == ("malicious-code", "infected-system")
    assert drone["source"] | {} == drone["source"] and drone["source"]["asn"] == 64500
    assert drone["source"]["cc"] == "NL" and drone["confidence"] == 100
    assert drone["indicators"] == [], "an infected host is a victim, not an indicator"
    assert drone["malware"] == {"name": "mirai", "hashes": {}}
    assert drone["extra"]["source.reverse_dns"] == "host77.example.net"
    assert drone["extra"]["naics"] == "517311"

    assert (c2["type"], c2["tlp"], c2["confidence"]) == ("c2-server", "CLEAR", 90)
    assert indicators(c2) == [
        ("ipv4", "192.0.2.66"),
        ("domain", "c2.bad-actor.example"),
        ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ]
    assert c2["references"] == ["https://feodotracker.abuse.ch/browse/host/192.0.2.66/"]
    assert "malware.hash.sha256" not in c2["extra"] and c2["extra"]["status"] == "online"

    assert (phishing["taxonomy"], phishing["type"], phishing["tlp"]) == ("fraud", "phishing", "GREEN")
    assert phishing["source"]["url"] == "https://secure-login.bank-verify.example/account?id=7", "refanged"
    assert phishing["description"] == "Credential phishing page"
    assert phishing["extra"]["tags"] == '["phishing","bank"]'

    assert (vulnerable["taxonomy"], vulnerable["type"]) == ("vulnerable", "vulnerable-system")
    assert vulnerable["source"]["ip"] == "2001:db8::42"
    assert vulnerable["protocol"] == {"transport": None, "application": "https"}

    assert (blocklist["taxonomy"], blocklist["type"]) == ("other", "undetermined")
    assert blocklist["extra"] == {"source.network": "203.0.113.0/24", "blocklist": "SBL555777"}


def test_rejections_name_the_intelmq_field():
    parsed = parse_sample(FEED, "rejects.jsonl")
    assert parsed.alerts == []
    assert rejections(parsed) == [
        ("line 1", "classification.type"),
        ("line 2", "source.ip"),
        ("line 3", "time.observation"),
        ("line 4", "source.port"),
        ("line 5", "tlp"),
        ("line 6", "event"),
        ("line 7", "feed.accuracy"),
    ]
