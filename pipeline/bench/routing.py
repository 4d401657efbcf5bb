"""`cwn bench --suite routing`: the cost of routing one alert against the size of the network.

Routing here is what the dispatch agent does per unique alert: enrichment (which members' assets
are involved: radix trees, ASN and domain-suffix lookups) and the routing decision (TLP gate,
recipients, owners, indexed subscriptions). Pure and in process: no broker.

Two corpora, because routing cost has two parts:

- `route_us`: finding the audience. The corpus is inside alerts (a member's address, network,
  ASN, domain or URL involved, at TLP:AMBER or AMBER+STRICT, as owners' alerts are sent) and
  addressed alerts (TLP:RED to named recipients), whose audience does not grow with the
  directory. Its mean cost per alert must stay flat as the
  directory grows from 100 to 10,000 members; that is what the indexes are for.
- `fanout`: sector intelligence at TLP:GREEN, which reaches every subscriber of the sector (as
  does an inside alert at CLEAR or GREEN: it concerns the owner's sector), so its deliveries
  grow with the network by nature. The cost per delivery must stay flat.
"""

from __future__ import annotations

import ipaddress
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.alert import SECTORS, Alert, build_alert
from pipeline.directory import Directory, Member, generate_members
from pipeline.enrich import enrich
from pipeline.routing import RoutingIndex, route

SIZES = (100, 1152, 10_000)
_NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def audience_corpus(members: list[Member], count: int, seed: int) -> list[Alert]:
    """Inside and addressed alerts about randomly chosen members."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        member = rng.choice(members)
        v4, v6 = member.constituency.cidrs
        host = str(v4.network_address + rng.randint(1, 250))
        kind = n % 6
        data: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time_observation": _NOW - timedelta(minutes=5),
            "feed": {"provider": "bench", "name": "routing"},
            "taxonomy": "intrusion-attempts",
            "type": "exploit",
            "severity": rng.choice(("low", "medium", "high", "critical")),
            "tlp": rng.choice(("AMBER", "AMBER+STRICT")),
            "source": {"ip": str(ipaddress.IPv4Address(0x2D000000 + rng.getrandbits(24)))},
        }
        if kind == 0:
            data["destination"] = {"ip": host, "port": 443}
        elif kind == 1:
            data["destination"] = {"ip": str(v6.network_address + rng.randint(1, 2**16))}
        elif kind == 2:
            data["destination"] = {"fqdn": f"www.{member.constituency.domains[0]}"}
        elif kind == 3:
            data["destination"] = {"url": f"https://portal.{member.constituency.domains[0]}/login"}
        elif kind == 4 and member.constituency.asns:
            data["destination"] = {"ip": host, "asn": member.constituency.asns[0]}
        else:
            data |= {
                "tlp": "RED",
                "recipients": [member.id],
                "taxonomy": "intrusions",
                "type": "system-compromise",
            }
        out.append(build_alert(data, now=_NOW))
    return out


def fanout_corpus(count: int, seed: int) -> list[Alert]:
    """Sector intelligence at TLP:GREEN for a random sector each."""
    rng = random.Random(seed)
    return [
        build_alert(
            {
                "time_observation": _NOW - timedelta(minutes=5),
                "feed": {"provider": "bench", "name": "intel"},
                "taxonomy": "malicious-code",
                "type": "c2-server",
                "severity": rng.choice(("medium", "high", "critical")),
                "confidence": rng.choice((50, 80, 100)),
                "tlp": "GREEN",
                "sectors": [rng.choice(SECTORS)],
                "indicators": [{"type": "domain", "value": f"c2-{n}.threat.example"}],
            },
            now=_NOW,
        )
        for n in range(count)
    ]


def _time_per_alert(index: RoutingIndex, alerts: list[Alert], repeat: int) -> tuple[float, int]:
    """Mean seconds to enrich and route one alert (best of `repeat` passes), and deliveries made."""
    best, deliveries = float("inf"), 0
    for _ in range(repeat):
        copies = [dict(a) for a in alerts]
        started = time.perf_counter()
        made = 0
        for alert in copies:
            made += len(route(enrich(alert, index), index))
        best = min(best, time.perf_counter() - started)
        deliveries = made
    return best / len(alerts), deliveries


def run_routing_suite(
    sizes: tuple[int, ...] = SIZES, alerts: int = 2000, repeat: int = 3, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure both corpora at each directory size; one JSON-ready dict."""
    route_us: dict[str, float] = {}
    fanout: dict[str, dict[str, float]] = {}
    intel = fanout_corpus(max(100, alerts // 10), seed=2)  # each reaches hundreds of members
    for size in sizes:
        say(f"routing: {size} members...")
        members = generate_members(size, seed=2026)
        index = RoutingIndex(Directory(members))
        per_alert, _ = _time_per_alert(index, audience_corpus(members, alerts, seed=1), repeat)
        route_us[str(size)] = round(per_alert * 1e6, 2)
        per_intel, deliveries = _time_per_alert(index, intel, repeat)
        fanout[str(size)] = {
            "us_per_alert": round(per_intel * 1e6, 2),
            "deliveries_per_alert": round(deliveries / len(intel), 2),
            "us_per_delivery": round(per_intel * 1e6 * len(intel) / max(deliveries, 1), 3),
        }
    smallest, largest = str(min(sizes)), str(max(sizes))
    return {
        "suite": "routing",
        "alerts": alerts,
        "route_us": route_us,
        "route_ratio": round(route_us[largest] / route_us[smallest], 3),
        "fanout": fanout,
        "fanout_per_delivery_ratio": round(
            fanout[largest]["us_per_delivery"] / fanout[smallest]["us_per_delivery"], 3
        ),
    }
