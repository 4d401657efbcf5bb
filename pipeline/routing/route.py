"""Routing: which members receive an alert, and why the others do not.

One function decides for one member (`decide`); `route` asks it only for the members the index
names as candidates, and `explain` asks it for every member. The two therefore never disagree,
and a property test holds `route` to the full scan.
"""

from __future__ import annotations

import bisect
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


@dataclass(frozen=True, slots=True)
class Facts:
    """What subscriptions are matched on, taken from an alert once for all its candidates."""

    sectors: frozenset[str]
    taxonomy: str
    full_type: str
    severity: str
    severity_rank: int
    confidence: int
    feed: str
    indicator_types: frozenset[str]

    @classmethod
    def of(cls, alert: Alert) -> Facts:
        return cls(
            sectors=frozenset(alert.get("sectors", ())),
            taxonomy=alert["taxonomy"],
            full_type=f"{alert['taxonomy']}/{alert['type']}",
            severity=alert["severity"],
            severity_rank=SEVERITY_RANK[alert["severity"]],
            confidence=alert["confidence"],
            feed=f"{alert['feed']['provider']}/{alert['feed']['name']}",
            indicator_types=frozenset(i["type"] for i in alert.get("indicators", ())),
        )


def _mismatch(sub: Subscription, facts: Facts, inside: bool) -> tuple[str, tuple[object, ...]] | None:
    """Why a subscription does not match, as a template and its values (formatted on demand)."""
    if sub.inside_only and not inside:
        return "constituency: none of its assets are involved", ()
    if sub.sectors and facts.sectors.isdisjoint(sub.sectors):
        return "sectors {} not concerned", (", ".join(sub.sectors),)
    if sub.taxonomies and facts.taxonomy not in sub.taxonomies and facts.full_type not in sub.taxonomies:
        return "taxonomy {} not subscribed", (facts.full_type,)
    if facts.severity_rank < SEVERITY_RANK[sub.min_severity]:
        return "severity {} below {}", (facts.severity, sub.min_severity)
    if facts.confidence < sub.min_confidence:
        return "confidence {} below {}", (facts.confidence, sub.min_confidence)
    if sub.feeds and facts.feed not in sub.feeds:
        return "feed not subscribed", ()
    if sub.indicator_types and facts.indicator_types.isdisjoint(sub.indicator_types):
        return "no indicator of a subscribed type", ()
    return None


def subscription_mismatch(sub: Subscription, facts: Facts, inside: bool) -> str | None:
    """Return why a subscription does not match the alert, or None when it does."""
    found = _mismatch(sub, facts, inside)
    return None if found is None else found[0].format(*found[1])


def decide(
    member: Member, facts: Facts, audience: Audience, index: RoutingIndex, why: bool = True
) -> Decision:
    """Decide for one member: TLP first, then recipient, inside, and each subscription.

    With `why` false, a refusal carries only its kind ("tlp" or "subscription"), which spares
    the router from formatting reasons nobody reads; the decision itself is the same.
    """
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
        mismatch = _mismatch(sub, facts, inside)
        if mismatch is None:
            return Decision(member.id, True, rule=f"subscription:{sub.id}")
        if why:
            reasons.append(f"{sub.id}: {mismatch[0].format(*mismatch[1])}")
    if not why:
        return Decision(member.id, False, reason="subscription")
    if not reasons:
        return Decision(member.id, False, reason="subscription: it has none")
    return Decision(member.id, False, reason="subscription: " + "; ".join(reasons))


def candidates(facts: Facts, audience: Audience, index: RoutingIndex) -> set[str]:
    """Members that may possibly receive the alert; every other member certainly does not."""
    found = set(audience.recipients) | set(audience.inside)
    if audience.tlp not in ("CLEAR", "GREEN", "AMBER"):
        return found
    allowed: set[str] | None = None
    if audience.tlp == "AMBER":
        # Beyond owners and recipients, AMBER reaches only its sharing groups: the candidates
        # are the subscribers within them, so the cost follows the audience, not the network.
        allowed = set().union(*(index.group_members.get(g, ()) for g in audience.sharing_groups))
        if not allowed:
            return found
    for sector in (*facts.sectors, None):
        for members in index.subscribers_up_to(sector, facts.severity_rank):
            found.update(members if allowed is None else members & allowed)
    return found


Receiver = tuple[str, str]
"""A member that receives an alert and the rule that lets it: (member id, rule)."""


def route(alert: Alert, index: RoutingIndex) -> list[Decision]:
    """The members that receive the alert, each with the rule that lets it, sorted by member id
    (`receivers`, as decisions)."""
    return [Decision(member_id, True, rule=rule) for member_id, rule in receivers(alert, index)]


def receivers(alert: Alert, index: RoutingIndex) -> list[Receiver]:
    """The members that receive the alert and the rule that lets each, sorted by member id.

    Members the alert does not name (neither owners nor recipients) are decided by the alert's
    facts, TLP and sharing groups alone, so that part is computed once per distinct combination
    and kept on the index (`RoutingIndex.memo`); named members are decided one by one. The memo
    keeps plain tuples of strings, which the cyclic collector stops tracking once they survive
    a collection: a memo of tens of thousands of receivers is then never walked again by the
    collector's full passes, each a pause of the worker's agents.
    """
    audience, facts = audience_of(alert), Facts.of(alert)
    named = audience.inside | audience.recipients
    unnamed = _unnamed_receivers(facts, audience, index)
    if not named:
        return list(unnamed)
    out = [receiver for receiver in unnamed if receiver[0] not in named]
    members = index.directory.members
    for member_id in named:
        member = members.get(member_id)
        if member is None:
            continue  # a recipient or owner that left the network receives nothing more
        decision = decide(member, facts, audience, index, why=False)
        if decision.receives:
            out.append((decision.member_id, decision.rule))
    out.sort()  # member ids are unique: this is by member id
    return out


def profile(facts: Facts, audience: Audience, index: RoutingIndex) -> tuple[object, ...]:
    """What decides an alert's receivers among the members it does not name, and no more.

    Facts no subscription of the directory tells apart are merged: a taxonomy, feed or
    indicator type no subscription names, and confidences between the same two subscription
    thresholds. Alerts of one profile reach the same unnamed members, so far fewer distinct
    alerts need a decision of their own.
    """
    return (
        facts.sectors,
        facts.taxonomy if facts.taxonomy in index.named_taxonomies else None,
        facts.full_type if facts.full_type in index.named_taxonomies else None,
        facts.severity_rank,
        bisect.bisect_right(index.confidence_steps, facts.confidence),
        facts.feed if facts.feed in index.named_feeds else None,
        facts.indicator_types & index.named_indicator_types,
        audience.tlp,
        audience.sharing_groups,
    )


def _unnamed_receivers(facts: Facts, audience: Audience, index: RoutingIndex) -> tuple[Receiver, ...]:
    """Receivers among the members the alert does not name, sorted by member id (memoised)."""
    if audience.tlp in ("AMBER+STRICT", "RED") or (audience.tlp == "AMBER" and not audience.sharing_groups):
        return ()  # TLP lets only named members see it
    key = profile(facts, audience, index)
    found = index.memo.get(key)
    if found is None:
        anonymous = Audience(audience.tlp, frozenset(), frozenset(), audience.sharing_groups)
        members = index.directory.members
        decisions = (
            decide(members[m], facts, anonymous, index, why=False)
            for m in sorted(candidates(facts, anonymous, index))
        )
        found = index.remember(key, tuple((d.member_id, d.rule) for d in decisions if d.receives))
    return found


def explain(alert: Alert, index: RoutingIndex) -> list[Decision]:
    """The decision for every member of the directory, receivers and the rest alike."""
    audience, facts = audience_of(alert), Facts.of(alert)
    return [decide(m, facts, audience, index) for m in index.directory]
