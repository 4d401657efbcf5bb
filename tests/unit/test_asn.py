from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.asn import AsnDataset, from_chunks, parse_ip2asn, to_chunks
from pipeline.rejected import Rejected
from tests.unit.strategies import valid_alert

SAMPLE = (
    Path(__file__).resolve().parents[1] / "samples" / "ip2asn" / "ip2asn-combined-sample.tsv"
).read_text()
DATASET = parse_ip2asn(SAMPLE)


def test_lookups_by_family_and_range_edges():
    assert DATASET.ranges == 5, "the unrouted range is left out"
    assert DATASET.lookup("1.0.0.0").asn == 13335
    assert DATASET.lookup("1.0.0.255").asn == 13335
    assert DATASET.lookup("1.0.1.7") is None, "ASN 0: not routed"
    info = DATASET.lookup("45.0.200.1")
    assert (info.asn, info.cc, info.name) == (64496, "NL", "EXAMPLE-TRANSIT Example Transit B.V.")
    assert DATASET.lookup("2001:db8::1").asn == 64502
    assert DATASET.lookup("203.0.113.200") is None
    assert DATASET.lookup("not an ip") is None
    assert AsnDataset().lookup("1.0.0.1") is None


def test_enrich_fills_only_what_is_missing():
    alert = valid_alert(source={"ip": "45.0.0.9"}, destination={"ip": "198.51.100.7", "asn": 65000})
    assert DATASET.enrich(alert) == 1
    assert (alert["source"]["asn"], alert["source"]["cc"], alert["source"]["as_name"]) == (
        64496, "NL", "EXAMPLE-TRANSIT Example Transit B.V.",
    )  # fmt: skip
    assert alert["destination"]["asn"] == 65000, "the producer's ASN stands"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1.0.0.0\t1.0.0.255\t13335\tUS", "expected 5"),
        ("1.0.0.9\t1.0.0.1\t13335\tUS\tX", "not a range"),
        ("1.0.0.0\t2001:db8::\t13335\tUS\tX", "not a range"),
        ("1.0.0.0\t1.0.0.1\tAS13335\tUS\tX", "line 1"),
    ],
)
def test_malformed_rows_are_named(line, problem):
    with pytest.raises(Rejected) as caught:
        parse_ip2asn(line + "\n")
    assert problem in caught.value.reason


@given(st.integers(0, 2**32 - 1))
def test_lookup_agrees_with_a_scan(n):
    import ipaddress

    address = str(ipaddress.IPv4Address(n))
    rows = [line.split("\t") for line in SAMPLE.splitlines()]
    expected = next(
        (
            int(r[2])
            for r in rows
            if ":" not in r[0]
            and int(ipaddress.ip_address(r[0])) <= n <= int(ipaddress.ip_address(r[1]))
            and r[2] != "0"
        ),
        None,
    )
    found = DATASET.lookup(address)
    assert (found.asn if found else None) == expected


def test_chunks_round_trip():
    big = SAMPLE * 20_000
    chunks = to_chunks(big)
    assert len(chunks) >= 1 and all(len(c) <= 512 * 1024 for c in chunks)
    assert from_chunks(chunks) == big
