"""TLP 2.0 (FIRST) as a gate in front of every subscription.

Who may receive an alert at all, whatever they subscribed to:
- CLEAR, GREEN: any member (GREEN is further kept from connectors marked public, at delivery);
- AMBER: members whose assets are involved, explicit recipients, and members of a named sharing
  group (`sector:<sector>` names every member of that sector);
- AMBER+STRICT: members whose assets are involved and explicit recipients;
- RED: explicit recipients only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

#: Ordered from least to most restrictive; a connector's ceiling is compared on this order.
TLP_ORDER = {"CLEAR": 0, "GREEN": 1, "AMBER": 2, "AMBER+STRICT": 3, "RED": 4}

SECTOR_GROUP_PREFIX = "sector:"


@dataclass(frozen=True, slots=True)
class Audience:
    """The facts about one alert that TLP decisions need."""

    tlp: str
    inside: frozenset[str]
    recipients: frozenset[str]
    sharing_groups: frozenset[str]


def member_groups(sectors: Collection[str], groups: Collection[str]) -> frozenset[str]:
    """The sharing groups a member belongs to: its named groups and one per sector."""
    return frozenset(groups) | {SECTOR_GROUP_PREFIX + s for s in sectors}


def tlp_denial(audience: Audience, member_id: str, groups: frozenset[str]) -> str | None:
    """Return why TLP keeps the alert from this member, or None when TLP allows it."""
    tlp = audience.tlp
    if tlp in ("CLEAR", "GREEN"):
        return None
    if member_id in audience.recipients:
        return None
    if tlp == "RED":
        return "tlp: RED goes to explicit recipients only"
    if member_id in audience.inside:
        return None
    if tlp == "AMBER+STRICT":
        return "tlp: AMBER+STRICT goes only to the member whose assets are involved and recipients"
    if tlp == "AMBER" and groups & audience.sharing_groups:
        return None
    if tlp == "AMBER":
        return "tlp: AMBER goes only to involved members, recipients and its sharing groups"
    return f"tlp: unknown label {tlp!r}"


def within_ceiling(tlp: str, ceiling: str) -> bool:
    """True when an alert labelled `tlp` may pass a target whose highest allowed label is `ceiling`."""
    return TLP_ORDER[tlp] <= TLP_ORDER[ceiling]
