import csv
import io
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.feeds import CsvMapping, FeedSpec
from pipeline.parsers import ParseContext, Parsed
from pipeline.parsers.csv_feed import parse
from pipeline.rejected import Rejected
from tests.unit.parsers.samples import NOW, indicators, parse_sample, rejections


def test_urlhaus_dump_with_comment_header():
    parsed = parse_sample("abusech/urlhaus", "urlhaus-recent.csv")
    assert parsed.skipped == {"csv comment": 4}
    assert rejections(parsed) == [("line 7", "source.url"), ("line 8", "row")]
    mozi, agent_tesla = parsed.alerts
    assert (mozi["taxonomy"], mozi["type"], mozi["severity"], mozi["tlp"]) == (
        "malicious-code", "malware-distribution", "high", "CLEAR",
    )  # fmt: skip
    assert indicators(mozi) == [("url", "http://198.51.100.14/bins/mozi.m")]
    assert mozi["time_observation"] == datetime(2026, 11, 29, 7, 12, 3, tzinfo=UTC)
    assert mozi["references"] == ["https://urlhaus.abuse.ch/url/3012345/"]
    assert mozi["extra"] == {"tags": "elf,Mozi", "url_status": "online", "urlhaus_id": "3012345"}
    assert indicators(agent_tesla) == [("url", "https://cdn-files.example/invoice_2026.zip")], "refanged"


def test_c2_list_with_a_plain_header_row():
    parsed = parse_sample("abusech/c2-ips", "c2-ip-blocklist.csv")
    assert parsed.skipped == {"csv header": 1}
    assert rejections(parsed) == [("line 5", "source.ip")]
    assert [indicators(a) for a in parsed.alerts] == [
        [("ipv4", "192.0.2.201")],
        [("ipv4", "198.51.100.202")],
        [("ipv6", "2001:db8:dead::beef")],
    ]
    assert [a["malware"]["name"] for a in parsed.alerts] == ["qakbot", "pikabot", "bumblebee"]
    assert parsed.alerts[1]["source"]["port"] == 8080


def test_scan_report_fills_the_member_side():
    parsed = parse_sample("shadowserver/scan-rdp-smb", "scan-report.csv")
    assert rejections(parsed) == [("line 4", "source.port")]
    rdp, smb = parsed.alerts
    assert (rdp["taxonomy"], rdp["type"]) == ("vulnerable", "potentially-unwanted-accessible")
    assert rdp["source"] == {
        "ip": "192.0.2.141", "port": 3389, "fqdn": "rdp-gw.hospital.example", "url": None, "asn": 64501,
        "as_name": None, "cc": "NL",
    }  # fmt: skip
    assert rdp["indicators"] == [], "a member's exposed host is not an indicator"
    assert (smb["source"]["asn"], smb["source"]["cc"]) == (64502, "NL"), "AS prefix and lower case accepted"


def test_csv_needs_a_mapping():
    with pytest.raises(Rejected) as caught:
        parse(b"a,b\n", ParseContext(feed="x/y", now=NOW))
    assert caught.value.field == "format"


def test_mapping_names_unknown_targets_and_columns():
    with pytest.raises(ValueError, match="not a field a CSV column can fill"):
        CsvMapping(columns=("a",), fields={"colour": "a"})
    with pytest.raises(ValueError, match="not among the columns"):
        CsvMapping(columns=("a",), fields={"source.ip": "b"})
    with pytest.raises(ValueError, match="csv mapping is required"):
        FeedSpec(id="x/y", format="csv", producers=("p",))


NOTES = FeedSpec(
    id="cert/notes",
    format="csv",
    producers=("cert",),
    csv=CsvMapping(
        columns=("ip", "note"),
        fields={"source.ip": "ip", "extra.note": "note"},
        constants={"taxonomy": "malicious-code", "type": "c2-server"},
        indicators={"ip": "ip"},
    ),
)


def parse_notes(payload: bytes) -> Parsed:
    return parse(payload, ParseContext.of(NOTES, NOW))


def test_a_quoted_cell_spans_lines_and_keeps_its_breaks():
    payload = b'192.0.2.1,"first line\r\nsecond line"\n192.0.2.2,"a\xe2\x80\xa8b"\nnot-an-ip,x\n'
    parsed = parse_notes(payload)
    assert [a["extra"]["note"] for a in parsed.alerts] == ["first line\r\nsecond line", "a\u2028b"]
    assert rejections(parsed) == [("line 4", "source.ip")], "named by the line the row starts on"


def without_controls(text: str) -> str:
    """As alerts carry text: control characters other than tab and line breaks removed."""
    return "".join(c for c in text if c in "\t\n\r" or 32 <= ord(c) != 127)


cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@given(
    rows=st.lists(st.tuples(st.booleans(), cells), min_size=1, max_size=12),
    # Python's writer quotes a cell holding a character of its line terminator only, so a
    # bare CR goes out quoted only with CRLF or with every cell quoted.
    dialect=st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]),
)
def test_rows_written_by_a_csv_writer_come_back_whole_and_rejections_name_their_line(rows, dialect):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=dialect[0], quoting=dialect[1])
    expected_notes, expected_rejections, line = [], [], 1
    for n, (valid, note) in enumerate(rows):
        start = out.tell()
        writer.writerow([f"192.0.2.{n + 1}" if valid else "not-an-ip", note])
        if valid and note.strip():
            expected_notes.append(without_controls(note.strip()))
        elif not valid:
            expected_rejections.append((f"line {line}", "source.ip"))
        line += len(io.StringIO(out.getvalue()[start:], newline="").readlines())
    parsed = parse_notes(out.getvalue().encode())
    assert [a["extra"]["note"] for a in parsed.alerts if "note" in a.get("extra", {})] == expected_notes
    assert len(parsed.alerts) == sum(valid for valid, _ in rows)
    assert rejections(parsed) == expected_rejections
