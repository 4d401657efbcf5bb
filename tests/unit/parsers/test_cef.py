from datetime import UTC, datetime

import pytest

from pipeline.parsers.cef import split_extension, split_header
from tests.unit.parsers.samples import parse_sample, rejections

FEED = "soc-partner/siem"


def test_cef_lines_with_and_without_syslog_header():
    parsed = parse_sample(FEED, "firewall-and-ids.log")
    assert parsed.rejected == []
    beacon, worm, eicar, brute, waf = parsed.alerts

    assert (beacon["taxonomy"], beacon["type"], beacon["severity"]) == ("malicious-code", "c2-server", "high")
    assert beacon["identifier"] == "spyware:Cobalt Strike Beacon Detection"
    assert beacon["time_observation"] == datetime(2026, 11, 29, 9, 10, 11, tzinfo=UTC)
    assert (beacon["source"]["ip"], beacon["destination"]["port"]) == ("10.20.0.77", 443)
    assert beacon["sensor"] == "fw-edge-01"
    assert beacon["extra"]["Rule"] == "block-outbound-c2", "custom string labelled by csNLabel"
    assert beacon["extra"]["device_vendor"] == "Palo Alto Networks"

    assert (worm["severity"], worm["type"]) == ("critical", "ids-alert"), "no cat: the feed's classification"
    assert worm["time_observation"] == datetime(2026, 11, 28, 9, 0, tzinfo=UTC), "rt in epoch milliseconds"
    assert worm["description"] == "Detected a threat. No action needed."

    assert (eicar["type"], eicar["severity"]) == ("infected-system", "medium")
    assert eicar["malware"]["hashes"] == {
        "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    }

    assert brute["extra"]["device_vendor"] == "Vendor|With Pipe", "escaped pipe in the header"
    assert brute["identifier"] == "Brute force login on ssh\\admin", "escaped backslash"
    assert brute["extra"]["msg"] == "50 failed logins in 60s= threshold", "escaped equals sign"
    assert (brute["severity"], brute["source"]["ip"]) == ("critical", "2001:db8::7")

    assert waf["destination"]["url"] == "https://shop.example/search?q=1' OR '1'='1"
    assert waf["severity"] == "high"


def test_rejections_say_what_is_wrong_with_the_line():
    parsed = parse_sample(FEED, "rejects.log")
    assert parsed.alerts == []
    assert rejections(parsed) == [
        ("line 1", "header"),
        ("line 2", "header.severity"),
        ("line 3", "source.ip"),
        ("line 4", "header"),
        ("line 5", "rt"),
        ("line 6", "header.version"),
    ]


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        ("", {}),
        ("a=1", {"a": "1"}),
        ("msg=two words b=2", {"msg": "two words", "b": "2"}),
        (r"msg=x\=y z=1", {"msg": "x=y", "z": "1"}),
        (r"msg=back\\slash", {"msg": "back\\slash"}),
        (r"msg=line\nbreak", {"msg": "line\nbreak"}),
    ],
)
def test_extension_values(extension, expected):
    assert split_extension(extension) == expected


def test_header_fields_are_unescaped():
    header, rest = split_header(r"CEF:0|A\|B|P|1|id|name \\ x|5|k=v")
    assert header == ["0", "A|B", "P", "1", "id", "name \\ x", "5"]
    assert rest == "k=v"
