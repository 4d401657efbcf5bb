"""Routing: which members receive an alert, and why the others do not.

One function decides for one member (`decide`); `route` asks it only for the members the index
names as candidates, and `explain` asks it for every member. The two therefore never disagree,
and a property test holds `route` to the full scan.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.alert import SEVERITY_RANK, Alert
from pipeline.directory import Member, Subscription
from pipeline.routing.index import RoutingIndex
from pipeline.routing.tlp import Audience, tlp_denial


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one member: `rule` when it receives the alert, else `reason`."""

    member_id: str
    receives: bool
    rule: str = ""
    reason: str = ""


def audience_of(alert: Alert) -> Audience:
    return Audience(
        tlp=alert["tlp"],
        inside=frozenset(alert.get("members_inside", ())),
        recipients=frozenset(alert.get("recipients", ())),
        sharing_groups=frozenset(alert.get("sharing_groups", ())),
    )


def subscription_mismatch(sub: Subscription, alert: Alert, inside: bool) -> str | None:
    """Return why a subscription does not match the alert, or None when it does."""
    if sub.inside_only and not inside:
        return "constituency: none of its assets are involved"
    if sub.sectors and not set(sub.sectors).intersection(alert.get("sectors", ())):
        return f"sectors {', '.join(sub.sectors)} not concerned"
    if sub.taxonomies:
        full = f"{alert['taxonomy']}/{alert['type']}"
        if alert["taxonomy"] not in sub.taxonomies and full not in sub.taxonomies:
            return f"taxonomy {full} not subscribed"
    if SEVERITY_RANK[alert["severity"]] < SEVERITY_RANK[sub.min_severity]:
        return f"severity {alert['severity']} below {sub.min_severity}"
    if alert["confidence"] < sub.min_confidence:
        return f"confidence {alert['confidence']} below {sub.min_confidence}"
    if sub.feeds and f"{alert['feed']['provider']}/{alert['feed']['name']}" not in sub.feeds:
        return "feed not subscribed"
    if sub.indicator_types and not {i["type"] for i in alert.get("indicators", ())} & set(
        sub.indicator_types
    ):
        return "no indicator of a subscribed type"
    return None


def decide(member: Member, alert: Alert, audience: Audience, index: RoutingIndex) -> Decision:
    """Decide for one member: TLP first, then recipient, inside, and each subscription."""
    denial = tlp_denial(audience, member.id, index.groups[member.id])
    if denial:
        return Decision(member.id, False, reason=denial)
    if member.id in audience.recipients:
        return Decision(member.id, True, rule="recipient")
    inside = member.id in audience.inside
    if inside and member.receive_inside:
        return Decision(member.id, True, rule="inside")
    reasons = []
    for sub in member.subscriptions:
        mismatch = subscription_mismatch(sub, alert, inside)
        if mismatch is None:
            return Decision(member.id, True, rule=f"subscription:{sub.id}")
        reasons.append(f"{sub.id}: {mismatch}")
    if not reasons:
        return Decision(member.id, False, reason="subscription: it has none")
    return Decision(member.id, False, reason="subscription: " + "; ".join(reasons))


def candidates(alert: Alert, audience: Audience, index: RoutingIndex) -> set[str]:
    """Members that may possibly receive the alert; every other member certainly does not."""
    found = set(audience.recipients) | set(audience.inside)
    if audience.tlp in ("CLEAR", "GREEN", "AMBER"):
        for sector in alert.get("sectors", ()):
            found.update(m.id for m, _ in index.by_sector.get(sector, ()))
        found.update(m.id for m, _ in index.any_sector)
    return found


def route(alert: Alert, index: RoutingIndex) -> list[Decision]:
    """The members that receive the alert, each with the rule that lets it, sorted by member id."""
    audience = audience_of(alert)
    members = index.directory.members
    out = []
    for member_id in sorted(candidates(alert, audience, index)):
        member = members.get(member_id)
        if member is None:
            continue  # a recipient or owner that left the network receives nothing more
        decision = decide(member, alert, audience, index)
        if decision.receives:
            out.append(decision)
    return out


def explain(alert: Alert, index: RoutingIndex) -> list[Decision]:
    """The decision for every member of the directory, receivers and the rest alike."""
    audience = audience_of(alert)
    return [decide(m, alert, audience, index) for m in index.directory]
