"""Member-facing alerts and deliveries for connector tests."""

from __future__ import annotations

from connectors.core import Delivery
from pipeline.serde import from_json, to_json
from tests.unit.strategies import valid_alert


def member_alert(n: int = 0, tlp: str = "GREEN", **changes: object) -> dict:
    """A valid alert as a member topic carries it (JSON values), numbered by `n`."""
    fields: dict = {
        "tlp": tlp,
        "taxonomy": "malicious-code",
        "type": "c2-server",
        "identifier": f"ET MALWARE beacon {n}",
        "severity": "high",
        "source": {"ip": f"203.0.113.{n % 250 + 1}", "port": 443},
        "indicators": [{"type": "ipv4", "value": f"203.0.113.{n % 250 + 1}"}],
        "description": "C2 traffic | seen = twice\nfrom a member's host",
    }
    return from_json(to_json(valid_alert(**(fields | changes))))


def deliveries(count: int, member: str = "m1", tlp: str = "GREEN", start: int = 0) -> list[Delivery]:
    return [Delivery(member, "subscription:s1", member_alert(start + i, tlp)) for i in range(count)]
