from pathlib import Path

import pytest

from pipeline.rules import EnrichmentRules, RulesError, load_rules
from tests.unit.strategies import valid_alert

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules((ROOT / "enrichment.yaml").read_text())


def intel(*indicators, **changes):
    return valid_alert(
        **({"taxonomy": "malicious-code", "type": "c2-server", "severity": "high",
            "indicators": [{"type": t, "value": v} for t, v in indicators]} | changes)
    )  # fmt: skip


def test_listed_indicators_are_removed_and_counted():
    alert = intel(("ipv4", "8.8.8.8"), ("domain", "c2.example"), ("ipv6", "2001:4860:4860::8888"))
    effects = RULES.apply(alert)
    assert alert["indicators"] == [{"type": "domain", "value": "c2.example"}]
    assert effects.removed == {"public-resolvers": 2} and effects.suppressed_by is None
    assert alert["severity"] == "high"


def test_an_alert_listed_whole_is_suppressed_or_downgraded():
    resolver = intel(("ipv4", "1.1.1.1"))
    assert RULES.apply(resolver).suppressed_by == "public-resolvers"
    top = intel(("domain", "google.com"), ("url", "https://www.microsoft.com/"))
    effects = RULES.apply(top)
    assert effects.downgraded_by is None, "one indicator is not listed"
    assert effects.removed == {"top-domains": 1}, "www.microsoft.com is not microsoft.com"
    assert top["severity"] == "high"
    only_apex = intel(("domain", "google.com"))
    assert RULES.apply(only_apex).downgraded_by == "top-domains" and only_apex["severity"] == "info"


def test_subdomains_only_where_listed_with_a_star():
    assert RULES.apply(intel(("domain", "e123.a.akamaiedge.net"))).downgraded_by == "cdn-edges"
    assert RULES.apply(intel(("domain", "akamaiedge.net"))).downgraded_by is None
    assert RULES.apply(intel(("domain", "sites.google.com"))).removed == {}
    assert RULES.apply(intel(("email", "x@google.com"))).removed == {"top-domains": 1}


def test_watch_list_raises_never_lowers():
    alert = intel(("ipv4", "203.0.113.7"), severity="low")
    assert RULES.apply(alert).raised_by == "national-apt-infrastructure"
    assert alert["severity"] == "critical"
    url = intel(("url", "http://apt-update.example/x"), severity="medium")
    RULES.apply(url)
    assert url["severity"] == "critical"


def test_severity_rules_match_every_condition():
    hit = intel(("domain", "x.example"), malware={"name": "LockBit", "hashes": {}}, sectors=["health"])
    assert RULES.apply(hit).rule == "ransomware-in-health" and hit["severity"] == "critical"
    miss = intel(("domain", "x.example"), malware={"name": "lockbit", "hashes": {}}, sectors=["energy"])
    assert RULES.apply(miss).rule is None and miss["severity"] == "high"
    ics = valid_alert(taxonomy="vulnerable", type="potentially-unwanted-accessible", severity="low",
                      sectors=["energy"])  # fmt: skip
    assert RULES.apply(ics).rule == "exposed-ics" and ics["severity"] == "high"


def test_no_rules_change_nothing():
    alert = intel(("ipv4", "8.8.8.8"))
    before = dict(alert)
    effects = EnrichmentRules().apply(alert)
    assert alert == before and effects.suppressed_by is None and not effects.removed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("warninglists: [{id: x, values: [not a thing]}]", "not an address, network or domain"),
        ("warninglists: [{id: x, action: delete, values: [1.1.1.1]}]", "action"),
        ("watchlist: [{id: x, raise_to: urgent, values: [1.1.1.1]}]", "raise_to"),
        ("severity_rules: [{id: x, when: {colour: red}, set_severity: high}]", "colour"),
        ("colour: red", "colour"),
    ],
)
def test_problems_are_named(text, problem):
    with pytest.raises(RulesError) as caught:
        load_rules(text)
    assert problem in str(caught.value)
