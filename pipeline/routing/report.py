"""`cwn route explain`: who receives an alert, through which rule, and why the others do not.

Operators use it to answer a member's "why did we (not) get this?". The report is built from
the router's own `decide`, through `explain`, so it can never disagree with what was delivered
for the same alert and directory.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.alert import Alert
from pipeline.enrich import enrich
from pipeline.routing.index import RoutingIndex
from pipeline.routing.route import Decision, explain
from pipeline.rules import EnrichmentRules


def reason_kind(reason: str) -> str:
    """The kind of a refusal: tlp, subscription, or constituency when only an inside-only
    subscription could have matched and the member's assets are not involved."""
    kind = reason.split(":", 1)[0]
    parts = reason.removeprefix("subscription: ").split("; ")
    if kind == "subscription" and all("constituency:" in part for part in parts):
        return "constituency"
    return kind


def explain_report(
    alert: Alert,
    index: RoutingIndex,
    members: list[str] | None = None,
    everyone: bool = False,
    rules: EnrichmentRules | None = None,
) -> dict[str, Any]:
    """Enrich `alert` as the pipeline does, then decide for every member.

    The report names every receiver with its rule and counts the others by reason kind; with
    `members` (or `everyone`) it also gives those members' decisions in full, reasons included.
    An unknown member id is reported as such, never silently left out.
    """
    enrich(alert, index)
    effects = (rules or EnrichmentRules()).apply(alert)
    decisions = explain(alert, index)
    if effects.suppressed_by:  # the router is never asked: nobody receives it
        reason = f"warninglist: every indicator is on warning list {effects.suppressed_by}"
        decisions = [Decision(d.member_id, False, reason=reason) for d in decisions]
    receivers = [{"member": d.member_id, "rule": d.rule} for d in decisions if d.receives]
    refused = Counter(reason_kind(d.reason) for d in decisions if not d.receives)
    report: dict[str, Any] = {
        "alert": {
            "id": alert["id"],
            "tlp": alert["tlp"],
            "classification": f"{alert['taxonomy']}/{alert['type']}",
            "severity": alert["severity"],
            "confidence": alert["confidence"],
            "feed": f"{alert['feed']['provider']}/{alert['feed']['name']}",
            "sectors": alert["sectors"],
            "members_inside": alert["members_inside"],
            "recipients": alert["recipients"],
            "sharing_groups": alert["sharing_groups"],
        },
        "members": len(decisions),
        "receivers": receivers,
        "not_receiving": dict(sorted(refused.items())),
        "rules": {
            "indicators_removed": dict(effects.removed),
            "suppressed_by": effects.suppressed_by,
            "downgraded_by": effects.downgraded_by,
            "raised_by": effects.raised_by,
            "severity_rule": effects.rule,
        },
    }
    wanted = set(members or ())
    if wanted or everyone:
        detail = [
            {"member": d.member_id, "receives": d.receives}
            | ({"rule": d.rule} if d.receives else {"reason": d.reason})
            for d in decisions
            if everyone or d.member_id in wanted
        ]
        known = {d.member_id for d in decisions}
        detail += [
            {"member": m, "receives": False, "reason": "not in the directory"} for m in sorted(wanted - known)
        ]
        report["decisions"] = detail
    return report
