"""Hypothesis strategies for valid alerts and directories."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from pipeline.alert import ORIGINS, RSIT, SECTORS, SEVERITIES, TLP_LEVELS
from pipeline.directory import Constituency, Member, Subscription

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def alert_data(**changes: object) -> dict:
    """The fields of a minimal valid alert (observed an hour before NOW), with changes on top."""
    base = {
        "time_observation": "2026-11-29T11:00:00Z",
        "feed": {"provider": "cert", "name": "ids"},
        "taxonomy": "intrusion-attempts",
        "type": "exploit",
    }
    return base | changes


def valid_alert(**changes: object) -> dict:
    """A minimal alert built and checked as the pipeline would, as of NOW."""
    from pipeline.alert import build_alert

    return build_alert(alert_data(**changes), now=NOW)


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
times = st.integers(0, 300 * 24 * 3600 * 10**6).map(lambda us: NOW - timedelta(microseconds=us))
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
classes = st.sampled_from(sorted(RSIT))


@st.composite
def endpoints(draw: st.DrawFn) -> dict:
    return {
        "ip": draw(st.none() | ipv4 | ipv6),
        "port": draw(st.none() | st.integers(0, 65535)),
        "fqdn": draw(st.none() | st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){1,3}", fullmatch=True)),
        "url": draw(st.none() | text),
        "asn": draw(st.none() | st.integers(1, 2**32 - 1)),
        "as_name": draw(st.none() | text),
        "cc": draw(st.none() | st.sampled_from(["DE", "FR", "NL", "US"])),
    }


@st.composite
def alerts(draw: st.DrawFn, member_ids: tuple[str, ...] = ("m1", "m2", "m3")) -> dict:
    """A valid alert in its internal (decoded) shape."""
    taxonomy = draw(classes)
    return {
        "schema_version": 1,
        "id": str(draw(st.uuids())),
        "fingerprint": draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
        "time_source": draw(st.none() | times),
        "time_observation": draw(times),
        "feed": {"provider": draw(text), "name": draw(text), "partner": draw(st.none() | text)},
        "sensor": draw(st.none() | text),
        "origin": draw(st.sampled_from(ORIGINS)),
        "taxonomy": taxonomy,
        "type": draw(st.sampled_from(RSIT[taxonomy])),
        "identifier": draw(st.none() | text),
        "severity": draw(st.sampled_from(SEVERITIES)),
        "confidence": draw(st.integers(0, 100)),
        "tlp": draw(st.sampled_from(TLP_LEVELS)),
        "recipients": draw(st.lists(st.sampled_from(member_ids), max_size=2, unique=True)),
        "sharing_groups": draw(
            st.lists(st.sampled_from([f"sector:{s}" for s in SECTORS[:4]] + ["g1"]), max_size=2, unique=True)
        ),
        "source": draw(st.none() | endpoints()),
        "destination": draw(st.none() | endpoints()),
        "indicators": draw(
            st.lists(
                st.fixed_dictionaries({"type": st.sampled_from(["ipv4", "domain", "url"]), "value": text}),
                max_size=3,
            )
        ),
        "malware": draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "name": st.none() | text,
                    "hashes": st.dictionaries(st.sampled_from(["md5", "sha256"]), text, max_size=2),
                }
            )
        ),
        "protocol": draw(
            st.none()
            | st.fixed_dictionaries({"transport": st.none() | text, "application": st.none() | text})
        ),
        "sectors": draw(st.lists(st.sampled_from(SECTORS[:4]), max_size=2, unique=True)),
        "members_inside": draw(st.lists(st.sampled_from(member_ids), max_size=2, unique=True)),
        "count": draw(st.integers(1, 10**6)),
        "first_seen": draw(st.none() | times),
        "last_seen": draw(st.none() | times),
        "description": draw(st.none() | text),
        "references": draw(st.lists(text, max_size=2)),
        "extra": draw(st.dictionaries(text, text, max_size=3)),
        "raw": draw(st.none() | st.binary(max_size=64)),
    }


subscriptions = st.builds(
    Subscription,
    id=st.sampled_from(["s1", "s2", "s3"]),
    sectors=st.lists(st.sampled_from(SECTORS[:4]), max_size=2, unique=True).map(tuple),
    taxonomies=st.lists(classes, max_size=2, unique=True).map(tuple),
    min_severity=st.sampled_from(SEVERITIES),
    min_confidence=st.integers(0, 100),
    feeds=st.sampled_from([(), ("p/f",)]),
    indicator_types=st.sampled_from([(), ("domain",), ("ipv4", "url")]),
    inside_only=st.booleans(),
)


@st.composite
def directories(draw: st.DrawFn, size: int = 6) -> list[Member]:
    """Members m0..m{size-1}; member n owns 10.n.0.0/16 and n.example."""
    members = []
    for n in range(size):
        subs = draw(st.lists(subscriptions, max_size=3, unique_by=lambda s: s.id))
        members.append(
            Member(
                id=f"m{n}",
                name=f"Member {n}",
                sectors=tuple(
                    draw(st.lists(st.sampled_from(SECTORS[:4]), min_size=1, max_size=2, unique=True))
                ),
                constituency=Constituency(
                    cidrs=(ipaddress.ip_network(f"10.{n}.0.0/16"),), domains=(f"n{n}.example",)
                ),
                groups=tuple(draw(st.lists(st.just("g1"), max_size=1))),
                receive_inside=draw(st.booleans()),
                subscriptions=tuple(subs),
            )
        )
    return members
