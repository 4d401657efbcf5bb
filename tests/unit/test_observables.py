import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.observables import (
    canonical_domain,
    canonical_email,
    canonical_url,
    indicator,
    refang,
)
from pipeline.rejected import Rejected
from tests.unit.strategies import ipv4, ipv6


@pytest.mark.parametrize(
    ("defanged", "plain"),
    [
        ("hxxp://evil[.]example/a", "http://evil.example/a"),
        ("hXXps://evil(.)example", "https://evil.example"),
        ("evil[dot]example", "evil.example"),
        ("198.51.100[.]7", "198.51.100.7"),
        ("user[at]evil[.]example", "user@evil.example"),
        ("hxxp[://]evil.example", "http://evil.example"),
        ("fxp://files[.]example", "ftp://files.example"),
        ("https://plain.example/[x]", "https://plain.example/[x]"),
    ],
)
def test_refang(defanged, plain):
    assert refang(defanged) == plain


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("WWW.Example.ORG.", "www.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("evil[.]example", "evil.example"),
        ("_dmarc.example.org", "_dmarc.example.org"),
    ],
)
def test_domains(value, canonical):
    assert canonical_domain(value, "f") == canonical


@pytest.mark.parametrize(
    "value", ["", "localhost", "a..example", "-bad.example", "x" * 64 + ".example", "1.2.3.4"]
)
def test_not_domains(value):
    with pytest.raises(Rejected) as caught:
        canonical_domain(value, "source.fqdn")
    assert caught.value.field == "source.fqdn"


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("HTTP://Evil.Example:8080/Path?Q=1", "http://evil.example:8080/Path?Q=1"),
        ("hxxps://evil[.]example/a b", "https://evil.example/a b"),
        ("http://[2001:DB8::1]/x", "http://[2001:db8::1]/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
    ],
)
def test_urls(value, canonical):
    assert canonical_url(value, "u") == canonical


@pytest.mark.parametrize("value", ["not a url", "/relative/path", "http://", "http://[::1/x", "mailto:"])
def test_not_urls(value):
    with pytest.raises(Rejected):
        canonical_url(value, "u")


def test_emails_and_indicator_kinds():
    assert canonical_email("Billing@Invoice-Portal.EXAMPLE", "e") == "Billing@invoice-portal.example"
    assert indicator("ip", "2001:DB8::0:1") == {"type": "ipv6", "value": "2001:db8::1"}
    assert indicator("sha256", "A" * 64) == {"type": "sha256", "value": "a" * 64}
    assert indicator("asn", "AS64500") == {"type": "asn", "value": "64500"}
    assert indicator("cve", "cve-2024-3400") == {"type": "cve", "value": "CVE-2024-3400"}
    with pytest.raises(Rejected, match="is an ipv6 address, not ipv4"):
        indicator("ipv4", "2001:db8::1")
    with pytest.raises(Rejected) as caught:
        indicator("colour", "red", "indicators[3]")
    assert caught.value.field == "indicators[3].type"


@given(ipv4 | ipv6)
def test_any_address_is_its_own_canonical_form(address):
    kind = "ipv6" if ":" in address else "ipv4"
    assert indicator("ip", address)["value"] == str(ipaddress.ip_address(address))
    assert indicator(kind, address.upper())["value"] == str(ipaddress.ip_address(address))


@given(st.text(max_size=80), st.sampled_from(["ip", "domain", "url", "email", "md5", "sha1", "asn", "cve"]))
def test_any_text_gives_an_indicator_or_a_rejection(value, kind):
    try:
        canonical = indicator(kind, value)
    except Rejected as rejected:
        assert rejected.reason
    else:
        assert indicator(kind, canonical["value"]) == canonical, "canonical forms are fixed points"
