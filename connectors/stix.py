"""Alerts as STIX 2.1 objects, for the TAXII collections.

An alert with indicators becomes an `indicator` whose pattern ORs its observables; one without
(an alert about a member's own exposed or infected host, whose address is a victim's and must
not become an indicator) becomes an `incident`. Ids are derived from the alert id, so the same
alert delivered twice is the same object. Each object is marked with the TLP 2.0 marking
definition of its label and carries the RSIT classification, severity and the idempotency key
as `x_cwn_*` properties.
"""

from __future__ import annotations

import uuid
from typing import Any

from connectors.core import Delivery
from pipeline.parsers.stix2 import TLP2_MARKINGS

#: TLP 2.0 marking definition ids by label.
TLP2_MARKING = {label: ref for ref, label in TLP2_MARKINGS.items()}
_NAMESPACE = uuid.UUID("6f1c2d0e-4b5a-5c3e-9a7d-2c1b0e9f8a61")
IDENTITY_ID = f"identity--{uuid.uuid5(_NAMESPACE, 'cwn')}"
_CONFIDENCE_DEFAULT = 50

_OBSERVABLE = {
    "ipv4": "ipv4-addr:value",
    "ipv6": "ipv6-addr:value",
    "domain": "domain-name:value",
    "url": "url:value",
    "email": "email-addr:value",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
    "sha512": "file:hashes.'SHA-512'",
}


IDENTITY_CREATED = "2026-01-01T00:00:00.000Z"


def identity(created: str = IDENTITY_CREATED) -> dict[str, Any]:
    """The network itself, the creator of every object it publishes (one fixed version)."""
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": IDENTITY_ID,
        "created": created,
        "modified": created,
        "name": "CWN alert pipeline",
        "identity_class": "organization",
    }


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern(indicators: list[dict[str, str]]) -> str | None:
    """A STIX pattern matching any of the indicators it can express; None when none."""
    terms = [
        f"[{_OBSERVABLE[i['type']]} = {_quote(i['value'])}]"
        for i in indicators
        if i.get("type") in _OBSERVABLE
    ]
    return " OR ".join(dict.fromkeys(terms)) or None


def _stamp(value: str | None) -> str:
    """STIX timestamps: RFC 3339 in UTC with a Z, milliseconds at most."""
    if not value:
        return "1970-01-01T00:00:00.000Z"
    text = value.replace("+00:00", "Z")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())[:3].ljust(3, "0")
        return f"{head}.{digits}Z"
    return text.replace("Z", ".000Z")


def to_stix(delivery: Delivery) -> dict[str, Any]:
    """The one STIX object an alert becomes."""
    alert = delivery.alert
    seen = _stamp(alert.get("time_observation"))
    created = _stamp(alert.get("first_seen") or alert.get("time_observation"))
    common: dict[str, Any] = {
        "spec_version": "2.1",
        "created": created,
        "modified": seen if seen > created else created,
        "created_by_ref": IDENTITY_ID,
        "confidence": alert.get("confidence", _CONFIDENCE_DEFAULT),
        "object_marking_refs": [TLP2_MARKING[alert.get("tlp", "AMBER")]],
        "x_cwn_taxonomy": alert.get("taxonomy"),
        "x_cwn_type": alert.get("type"),
        "x_cwn_severity": alert.get("severity"),
        "x_cwn_alert_id": alert.get("id"),
        "x_cwn_idempotency_key": delivery.key,
    }
    name = alert.get("identifier") or f"{alert.get('taxonomy')}/{alert.get('type')}"
    references = [
        {"source_name": "cve", "external_id": i["value"]}
        for i in alert.get("indicators") or []
        if i.get("type") == "cve"
    ] + [{"source_name": "reference", "url": url} for url in alert.get("references") or []]
    if references:
        common["external_references"] = references
    if alert.get("description"):
        common["description"] = alert["description"]
    expression = pattern(alert.get("indicators") or [])
    seed = str(alert.get("id"))
    if expression:
        return common | {
            "type": "indicator",
            "id": f"indicator--{uuid.uuid5(_NAMESPACE, seed)}",
            "name": name,
            "pattern": expression,
            "pattern_type": "stix",
            "valid_from": _stamp(alert.get("time_source") or alert.get("time_observation")),
            "indicator_types": ["malicious-activity"],
        }
    return common | {
        "type": "incident",
        "id": f"incident--{uuid.uuid5(_NAMESPACE, seed)}",
        "name": name,
        "x_cwn_source": alert.get("source"),
        "x_cwn_destination": alert.get("destination"),
    }
