"""Enrichment: which members' assets an alert involves, and which sectors it concerns.

Pure over a `RoutingIndex`. The sectors a producer set are kept; the sectors of every member
whose assets are involved are added, so sector subscriptions also see inside alerts of their
sector.
"""

from __future__ import annotations

from pipeline.alert import Alert
from pipeline.routing.index import RoutingIndex


def enrich(alert: Alert, index: RoutingIndex) -> Alert:
    """Set `members_inside` and extend `sectors`; returns the same dict, changed in place."""
    owners = sorted(index.owners(alert))
    alert["members_inside"] = owners
    sectors = set(alert.get("sectors", ()))
    for owner in owners:
        sectors.update(index.directory.members[owner].sectors)
    alert["sectors"] = sorted(sectors)
    return alert
