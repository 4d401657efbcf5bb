"""Indexes over the directory so that enrichment and routing cost stays flat in member count.

Constituency lookups go through radix trees (pytricia) for IPv4 and IPv6, a dict for ASNs and a
dict walked label by label for domain suffixes. Subscriptions are indexed by sector and minimum
severity, with those that name no sector kept apart. Built once per directory version;
read-only afterwards (but for a bounded memo of routing results), so one index can be shared by
every batch until the directory changes, and a new directory starts with an empty memo.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import Any
from urllib.parse import urlsplit

import pytricia

from pipeline.alert import SEVERITY_RANK, Alert
from pipeline.directory import Directory, Member
from pipeline.observables import digits
from pipeline.routing.tlp import member_groups

#: Distinct alert profiles whose receivers `RoutingIndex.memo` keeps; beyond it the memo starts
#: afresh, which bounds its memory whatever the feeds send.
MEMO_LIMIT = 4096


class RoutingIndex:
    """Lookups from observables to owning members, and from sectors to subscriptions."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._v4 = pytricia.PyTricia(32)
        self._v6 = pytricia.PyTricia(128)
        self._asn: dict[int, str] = {}
        self._domain: dict[str, str] = {}
        # Subscribers by sector (None: subscriptions naming no sector) and by the rank of their
        # minimum severity, so that a candidate lookup skips subscriptions the alert's severity
        # cannot meet: most "critical only" subscriptions never see a medium alert.
        self.subscribers: dict[str | None, list[set[str]]] = defaultdict(
            lambda: [set() for _ in SEVERITY_RANK]
        )
        self.group_members: dict[str, set[str]] = defaultdict(set)
        self.groups: dict[str, frozenset[str]] = {}
        # Routing results that depend only on an alert's profile (see `route`), by profile.
        self.memo: dict[Hashable, tuple[Any, ...]] = {}
        # What any subscription compares an alert with: a profile keeps only these distinctions.
        self.named_taxonomies: set[str] = set()
        self.named_feeds: set[str] = set()
        self.named_indicator_types: set[str] = set()
        self._confidences: set[int] = set()
        for member in directory:
            self._add(member)
        self.confidence_steps = tuple(sorted(self._confidences))

    def _add(self, member: Member) -> None:
        for network in member.constituency.cidrs:
            tree = self._v4 if network.version == 4 else self._v6
            tree[str(network)] = member.id
        for asn in member.constituency.asns:
            self._asn[asn] = member.id
        for domain in member.constituency.domains:
            self._domain[domain] = member.id
        groups = member_groups(member.sectors, member.groups)
        self.groups[member.id] = groups
        for group in groups:
            self.group_members[group].add(member.id)
        for sub in member.subscriptions:
            self.named_taxonomies.update(sub.taxonomies)
            self.named_feeds.update(sub.feeds)
            self.named_indicator_types.update(sub.indicator_types)
            self._confidences.add(sub.min_confidence)
            if sub.inside_only:
                continue  # reached through the owner lookup, never through sectors
            rank = SEVERITY_RANK[sub.min_severity]
            for sector in sub.sectors or (None,):
                self.subscribers[sector][rank].add(member.id)

    def remember(self, key: Hashable, value: tuple[Any, ...]) -> tuple[Any, ...]:
        """Keep a routing result for `key` and return it; the memo is emptied when full."""
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        self.memo[key] = value
        return value

    def subscribers_up_to(self, sector: str | None, severity_rank: int) -> Iterable[set[str]]:
        """Members with a subscription to `sector` (None: to any sector) whose minimum severity
        is at most `severity_rank`."""
        ranks = self.subscribers.get(sector)
        return ranks[: severity_rank + 1] if ranks else ()

    def owner_of_ip(self, ip: str) -> str | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        tree = self._v4 if address.version == 4 else self._v6
        return tree.get(str(address))

    def owner_of_domain(self, name: str) -> str | None:
        labels = name.lower().rstrip(".").split(".")
        for i in range(len(labels) - 1):
            owner = self._domain.get(".".join(labels[i:]))
            if owner is not None:
                return owner
        return None

    def owners(self, alert: Alert) -> set[str]:
        """Members whose addresses, ASNs or domains appear in the alert's endpoints or indicators."""
        found: set[str] = set()
        for side in (alert.get("source"), alert.get("destination")):
            if side:
                found.update(self._endpoint_owners(side))
        for indicator in alert.get("indicators", ()):
            found.update(self._indicator_owners(indicator["type"], indicator["value"]))
        found.discard(None)  # type: ignore[arg-type]
        return found

    def _endpoint_owners(self, side: dict) -> Iterable[str | None]:
        if side.get("ip"):
            yield self.owner_of_ip(side["ip"])
        if side.get("asn") is not None:
            yield self._asn.get(side["asn"])
        if side.get("fqdn"):
            yield self.owner_of_domain(side["fqdn"])
        if side.get("url"):
            yield self._url_owner(side["url"])

    def _indicator_owners(self, kind: str, value: str) -> Iterable[str | None]:
        if kind in ("ip", "ipv4", "ipv6"):
            yield self.owner_of_ip(value)
        elif kind in ("domain", "fqdn", "hostname"):
            yield self.owner_of_domain(value)
        elif kind == "url":
            yield self._url_owner(value)
        elif kind == "asn":
            number = value.upper().removeprefix("AS")
            yield self._asn.get(int(number)) if digits(number) else None
        elif kind == "email":
            yield self.owner_of_domain(value.rpartition("@")[2])

    def _url_owner(self, url: str) -> str | None:
        try:
            host = urlsplit(url if "//" in url else f"//{url}").hostname
        except ValueError:
            return None
        if not host:
            return None
        return self.owner_of_ip(host) or self.owner_of_domain(host)
