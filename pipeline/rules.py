"""Enrichment rules: warning lists, a watch list and declarative severity rules.

`enrichment.yaml` holds them; `cwn enrich import` puts it in force through the compacted
control topic `cwn.enrichment`, and every worker applies a change within seconds.

- A **warning list** names values known to be benign (public resolvers, large CDNs, top
  domains): an indicator on one is removed from the alert, and when an alert's indicators were
  all on warning lists the list's action applies: `suppress` (the alert stays in the audit
  stream but is delivered to nobody) or `downgrade` (its severity drops to `info`). Every
  removal, suppression and downgrade is counted by list.
- The **watch list** names indicators of special concern: an alert carrying one is raised to
  the entry's severity (never lowered).
- **Severity rules** set the severity of alerts matching all of their conditions (RSIT class
  or class/type, feed, malware names, sectors, indicator types), in order; the last match wins.

Values are matched in canonical form: addresses against addresses and networks, domains and
URL hosts against domains and their subdomains.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytricia
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline import observables
from pipeline.alert import SEVERITIES, SEVERITY_RANK, Alert
from pipeline.rejected import Rejected

Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WarningList(_Model):
    id: RuleId
    description: str = ""
    action: Literal["suppress", "downgrade"] = "suppress"
    values: tuple[str, ...] = Field(min_length=1, description="IP addresses, networks (CIDR) or domains.")


class WatchEntry(_Model):
    id: RuleId
    description: str = ""
    raise_to: Severity = "high"
    values: tuple[str, ...] = Field(min_length=1)


class When(_Model):
    taxonomies: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    malware: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    indicator_types: tuple[str, ...] = ()


class SeverityRule(_Model):
    id: RuleId
    when: When
    set_severity: Severity


class RulesFile(_Model):
    warninglists: tuple[WarningList, ...] = ()
    watchlist: tuple[WatchEntry, ...] = ()
    severity_rules: tuple[SeverityRule, ...] = ()


class RulesError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Matcher:
    """Which named entry a canonical address, domain or URL falls under.

    Addresses match listed addresses and networks; a domain matches a listed domain exactly, or
    any subdomain of one listed as `*.domain` (a listed `google.com` does not clear
    `sites.google.com`, where phishing pages are hosted).
    """

    def __init__(self) -> None:
        self._v4 = pytricia.PyTricia(32)
        self._v6 = pytricia.PyTricia(128)
        self._exact: dict[str, str] = {}
        self._suffix: dict[str, str] = {}

    def add(self, value: str, name: str, where: str) -> None:
        text = value.strip()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            table = self._suffix if text.startswith("*.") else self._exact
            try:
                table[observables.canonical_domain(text.removeprefix("*."), where)] = name
            except Rejected as exc:
                raise RulesError([f"{where}: {text!r} is not an address, network or domain"]) from exc
            return
        (self._v4 if network.version == 4 else self._v6)[str(network)] = name

    def match(self, indicator: Mapping[str, str]) -> str | None:
        kind, value = indicator["type"], indicator["value"]
        if kind == "url":
            value = observables.url_host(value) or ""
            kind = "domain"
        elif kind == "email":
            kind, value = "domain", value.rpartition("@")[2]
        try:
            address = ipaddress.ip_address(value) if kind in ("ipv4", "ipv6", "domain") else None
        except ValueError:
            address = None
        if address is not None:
            return (self._v4 if address.version == 4 else self._v6).get(str(address))
        if kind != "domain" or not value:
            return None
        found = self._exact.get(value)
        labels = value.split(".")
        for i in range(1, len(labels)):
            if found:
                break
            found = self._suffix.get(".".join(labels[i:]))
        return found


@dataclass
class Effects:
    """What the rules did to one alert."""

    suppressed_by: str | None = None
    removed: Counter[str] = field(default_factory=Counter)
    downgraded_by: str | None = None
    raised_by: str | None = None
    rule: str | None = None


class EnrichmentRules:
    """Compiled rules; `apply` changes an alert in place and says what it did."""

    def __init__(self, rules: RulesFile | None = None) -> None:
        self.rules = rules or RulesFile()
        self._warning = _Matcher()
        self._actions = {w.id: w.action for w in self.rules.warninglists}
        for wl in self.rules.warninglists:
            for value in wl.values:
                self._warning.add(value, wl.id, f"warninglist {wl.id}")
        self._watch = _Matcher()
        self._raise = {w.id: w.raise_to for w in self.rules.watchlist}
        for entry in self.rules.watchlist:
            for value in entry.values:
                self._watch.add(value, entry.id, f"watchlist {entry.id}")

    def apply(self, alert: Alert) -> Effects:
        outcome = Effects()
        indicators = alert.get("indicators") or []
        if indicators and self._actions:
            kept = []
            for item in indicators:
                name = self._warning.match(item)
                if name is None:
                    kept.append(item)
                else:
                    outcome.removed[name] += 1
            if outcome.removed:
                alert["indicators"] = kept
                if not kept:
                    name = outcome.removed.most_common(1)[0][0]
                    if self._actions[name] == "suppress":
                        outcome.suppressed_by = name
                    else:
                        outcome.downgraded_by = name
                        alert["severity"] = "info"
        for rule in self.rules.severity_rules:
            if _matches(rule.when, alert):
                alert["severity"] = rule.set_severity
                outcome.rule = rule.id
        watched = (alert.get("indicators") or []) if self._raise else []  # no watch list: no lookups
        for item in watched:
            name = self._watch.match(item)
            if name and SEVERITY_RANK[self._raise[name]] > SEVERITY_RANK[alert["severity"]]:
                alert["severity"] = self._raise[name]
                outcome.raised_by = name
        return outcome


def _matches(when: When, alert: Alert) -> bool:
    full = f"{alert['taxonomy']}/{alert['type']}"
    if when.taxonomies and alert["taxonomy"] not in when.taxonomies and full not in when.taxonomies:
        return False
    if when.feeds and f"{alert['feed']['provider']}/{alert['feed']['name']}" not in when.feeds:
        return False
    malware = ((alert.get("malware") or {}).get("name") or "").lower()
    if when.malware and malware not in {m.lower() for m in when.malware}:
        return False
    if when.sectors and not set(when.sectors) & set(alert.get("sectors") or ()):
        return False
    kinds = {i["type"] for i in alert.get("indicators") or ()}
    return not (when.indicator_types and not set(when.indicator_types) & kinds)


def parse_rules(data: Any, source: str = "enrichment.yaml") -> EnrichmentRules:
    """Validate loaded rules and compile them; raises RulesError listing every problem."""
    if data is None:
        data = {}
    try:
        rules = RulesFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{source}: {'.'.join(str(p) for p in e['loc']) or 'rules'}: {e['msg']}" for e in exc.errors()
        ]
        raise RulesError(problems) from None
    return EnrichmentRules(rules)


def load_rules(text: str, source: str = "enrichment.yaml") -> EnrichmentRules:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError([f"{source}: not valid YAML: {exc}"]) from None
    return parse_rules(data, source)
