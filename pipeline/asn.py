"""ASN, AS name and country for any address, from an offline IP-to-ASN dataset.

The dataset is iptoasn.com's `ip2asn-combined.tsv` (public domain, built from BGP routing
tables, refreshed hourly upstream): one line per range, `first_ip TAB last_ip TAB asn TAB
country TAB as_description`, IPv4 and IPv6 together; ASN 0 marks unrouted space. An operator
downloads it where the network allows and loads it with `cwn enrich update FILE`: the file is
checked, compressed and written in chunks to the compacted control topic `cwn.enrichment`, from
which every worker loads it, live. `tests/samples/ip2asn/` holds a small file in that format.

Lookups are a binary search over sorted range starts, per address family: a few microseconds,
whatever the dataset's size.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.alert import Alert
from pipeline.rejected import Rejected

CHUNK_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class AsnInfo:
    asn: int
    cc: str | None
    name: str | None


class AsnDataset:
    """Sorted, non-overlapping ranges per address family; empty when none was loaded."""

    def __init__(self, rows: Iterable[tuple[int, int, int, AsnInfo]] = (), digest: str = "") -> None:
        ranges: dict[int, list[tuple[int, int, AsnInfo]]] = {4: [], 6: []}
        for version, first, last, info in rows:
            ranges[version].append((first, last, info))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        self._info: dict[int, list[AsnInfo]] = {}
        for version, items in ranges.items():
            items.sort(key=lambda r: r[0])
            self._starts[version] = [r[0] for r in items]
            self._ends[version] = [r[1] for r in items]
            self._info[version] = [r[2] for r in items]
        self.ranges = sum(len(v) for v in self._starts.values())
        self.digest = digest

    def lookup(self, address: str) -> AsnInfo | None:
        """The routed AS of an address, or None (unknown, or unrouted space)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        starts = self._starts[ip.version]
        i = bisect.bisect_right(starts, int(ip)) - 1
        if i < 0 or int(ip) > self._ends[ip.version][i]:
            return None
        return self._info[ip.version][i]

    def enrich(self, alert: Alert) -> int:
        """Fill `asn`, `as_name` and `cc` of the alert's endpoints where the producer left them
        out; returns how many endpoints were filled."""
        filled = 0
        if not self.ranges:
            return filled
        for side in ("source", "destination"):
            endpoint = alert.get(side)
            if not endpoint or not endpoint.get("ip") or endpoint.get("asn") is not None:
                continue
            info = self.lookup(endpoint["ip"])
            if info is None:
                continue
            endpoint["asn"] = info.asn
            endpoint["as_name"] = endpoint.get("as_name") or info.name
            endpoint["cc"] = endpoint.get("cc") or info.cc
            filled += 1
        return filled


def parse_ip2asn(text: str, source: str = "ip2asn") -> AsnDataset:
    """Read the TSV; raises Rejected naming the line of the first malformed row."""
    rows = []
    names: dict[tuple[int, str | None, str | None], AsnInfo] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 5:
            raise Rejected(
                "row", f"{source} line {number}: expected 5 tab-separated fields, got {len(parts)}"
            )
        try:
            first, last = ipaddress.ip_address(parts[0]), ipaddress.ip_address(parts[1])
            asn = int(parts[2])
        except ValueError as exc:
            raise Rejected("row", f"{source} line {number}: {exc}") from None
        if first.version != last.version or int(last) < int(first):
            raise Rejected("row", f"{source} line {number}: {parts[0]}-{parts[1]} is not a range")
        if asn == 0:
            continue  # not routed
        cc = parts[3].strip().upper() or None
        cc = None if cc in ("NONE", "ZZ") else cc
        name = parts[4].strip()[:256] or None
        info = names.setdefault((asn, cc, name), AsnInfo(asn, cc, name))
        rows.append((first.version, int(first), int(last), info))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return AsnDataset(rows, digest)


def to_chunks(text: str) -> list[bytes]:
    """The dataset compressed and cut into records that fit a Kafka message."""
    packed = zlib.compress(text.encode(), level=9)
    return [packed[i : i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)] or [b""]


def from_chunks(chunks: list[bytes]) -> str:
    return zlib.decompress(b"".join(chunks)).decode() if any(chunks) else ""
