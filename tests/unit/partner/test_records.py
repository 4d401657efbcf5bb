import csv
import io
import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.partner.records import UsageError, sniff_file_format, split_records
from tests.unit.parsers.samples import SAMPLES


def test_line_formats_send_one_record_per_non_blank_line():
    records = list(split_records(b"a\n\n  \nb\r\nc", "cef"))
    assert [(r.value, r.line, r.index) for r in records] == [(b"a", 1, 1), (b"b", 4, 2), (b"c", 5, 3)]


def test_documents_and_arrays():
    bundle = (SAMPLES / "stix2" / "campaign-bundle.json").read_bytes()
    assert [r.value for r in split_records(bundle, "stix2")] == [bundle]
    events = (SAMPLES / "misp" / "distributions.json").read_bytes()
    records = list(split_records(events, "misp"))
    assert len(records) == 4 and orjson.loads(records[0].value)["Event"]["distribution"] == "0"
    assert [r.index for r in split_records(b'[{"a":1},{"b":2}]', "alert-json")] == [1, 2]
    assert list(split_records(b"  \n", "stix2")) == []
    with pytest.raises(UsageError):
        list(split_records(b"[1,", "misp"))


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("suricata-eve/mixed-sensor.jsonl", "suricata-eve"),
        ("intelmq/shadowserver-and-abusech.jsonl", "intelmq"),
        ("cef/firewall-and-ids.log", "cef"),
        ("stix2/campaign-bundle.json", "stix2"),
        ("stix2/single-indicator.json", "stix2"),
        ("misp/event-export.json", "misp"),
        ("misp/distributions.json", "misp"),
        ("csv/c2-ip-blocklist.csv", None),
    ],
)
def test_sniffing_sample_files(path, fmt):
    assert sniff_file_format((SAMPLES / path).read_bytes()) == fmt


@given(st.binary(max_size=200), st.sampled_from(["cef", "suricata-eve", "intelmq", "stix2"]))
def test_splitting_never_loses_or_invents_content(data, fmt):
    records = [r.value for r in split_records(data, fmt)]
    if fmt == "stix2":
        assert records == ([data] if data.strip() else [])
    else:
        assert records == [line for line in data.splitlines() if line.strip()]


def test_a_csv_row_with_a_quoted_cell_over_lines_is_one_record():
    data = b'a,"x\r\n\r\ny ""q"""\n\nb,c\r"open\nd'
    records = [(r.value, r.line, r.index) for r in split_records(data, "csv")]
    assert records == [(b'a,"x\r\n\r\ny ""q"""', 1, 1), (b"b,c", 5, 2), (b'"open\nd', 6, 3)]


@given(st.binary(max_size=200).map(lambda b: b.translate(None, b"\x00") + b'"\n,a'))
def test_csv_splitting_keeps_every_byte_but_line_breaks_and_blank_lines(data):
    records = [r.value for r in split_records(data, "csv")]
    assert re.sub(rb"\s", b"", b"".join(records)) == re.sub(rb"\s", b"", data)


cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@given(st.lists(st.lists(cells, min_size=2, max_size=4), min_size=1, max_size=8))
def test_csv_rows_come_back_one_per_record_from_their_first_line(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    data = out.getvalue().encode()
    records = list(split_records(data, "csv"))
    assert [next(csv.reader(io.StringIO(r.value.decode(), newline=""))) for r in records] == rows
    starts = [1]
    for row in rows[:-1]:
        starts.append(starts[-1] + len(io.StringIO(_written(row), newline="").readlines()))
    assert [r.line for r in records] == starts


def _written(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(row)
    return out.getvalue()
