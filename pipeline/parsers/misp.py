"""MISP events in MISP's JSON export format (`{"Event": {...}}`, or a list of them).

One event becomes one alert (split into several when it has more indicators than an alert may
carry). Its indicators are the attributes marked `to_ids`, from the event and from its objects;
`link` attributes become references. An attribute whose value is not what its type says is
rejected on its own (located as `Attribute[i]` or `Object[j].Attribute[i]`) and the rest of
the event still goes out.

- TLP from the `tlp:*` tags (TLP 1.0 and 2.0 names; the most restrictive wins).
- Severity from `threat_level_id` (1 high, 2 medium, 3 low, 4 undefined as info); confidence
  from `analysis` (0 initial 30, 1 ongoing 60, 2 completed 90).
- Classification from `rsit:` (or `ecsirt:`) tags, else the feed's declared classification.
- Malware from a `malpedia` or `mitre-malware` galaxy, or a `misp-galaxy:` tag of those.
- Distribution is respected: a "your organisation only" event (0) is RED for the feed's owner
  member alone (nobody, if the feed has no owner), and a sharing-group event (4) is shared with
  that group by name, at TLP:AMBER at least. Deleted attributes and attributes of distribution 0 are left out.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline import observables
from pipeline.alert import MAX_INDICATORS
from pipeline.observables import digits
from pipeline.parsers.base import ParseContext, Parsed, build, each, json_value, split_indicators, text
from pipeline.rejected import Rejected
from pipeline.taxonomy import classify

_TYPES = {
    "ip-src": ("ip",),
    "ip-dst": ("ip",),
    "ip-src|port": ("ip", None),
    "ip-dst|port": ("ip", None),
    "domain": ("domain",),
    "hostname": ("domain",),
    "domain|ip": ("domain", "ip"),
    "hostname|port": ("domain", None),
    "url": ("url",),
    "email": ("email",),
    "email-src": ("email",),
    "email-dst": ("email",),
    "md5": ("md5",),
    "sha1": ("sha1",),
    "sha256": ("sha256",),
    "sha512": ("sha512",),
    "filename|md5": (None, "md5"),
    "filename|sha1": (None, "sha1"),
    "filename|sha256": (None, "sha256"),
    "vulnerability": ("cve",),
    "AS": ("asn",),
}
_TLP = {
    "clear": "CLEAR",
    "white": "CLEAR",
    "green": "GREEN",
    "amber": "AMBER",
    "amber+strict": "AMBER+STRICT",
    "red": "RED",
}
_TLP_RANK = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
_THREAT = {"1": "high", "2": "medium", "3": "low", "4": "info"}
_ANALYSIS = {"0": 30, "1": 60, "2": 90}
_TAXONOMY_TAG = re.compile(r'^(?:rsit|ecsirt):([a-z-]+)="([^"]+)"$', re.IGNORECASE)
_MALWARE_TAG = re.compile(r'^misp-galaxy:(?:malpedia|mitre-malware)="([^"]+)"$', re.IGNORECASE)


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """Every event of the payload: `{"Event": ...}`, a bare event, or a list of either."""
    data = json_value(payload)
    if isinstance(data, dict) and "response" in data and isinstance(data["response"], list):
        data = data["response"]
    events = data if isinstance(data, list) else [data]
    items = ((f"events[{i}]" if isinstance(data, list) else "Event", e) for i, e in enumerate(events))
    return each(items, lambda event: _event(event, context))


def _event(wrapper: Any, context: ParseContext) -> Parsed:
    if not isinstance(wrapper, dict):
        raise Rejected("Event", f"expected an object, got {type(wrapper).__name__}")
    event = wrapper.get("Event", wrapper)
    if not isinstance(event, dict) or ("Attribute" not in event and "info" not in event):
        raise Rejected("Event", "not a MISP event (no info and no Attribute)")
    parsed = Parsed()
    indicators, references = _attributes(event, parsed)
    tags = _tags(event)
    taxonomy, kind = _classification(tags, context)
    distribution = str(event.get("distribution", ""))
    data: dict[str, Any] = {
        "time_observation": _epoch(event.get("timestamp")) or event.get("date"),
        "taxonomy": taxonomy,
        "type": kind,
        "description": text(event.get("info"), "info"),
        "severity": _THREAT.get(str(event.get("threat_level_id", ""))),
        "confidence": _ANALYSIS.get(str(event.get("analysis", ""))),
        "tlp": _tlp(tags),
        "malware": (malware := _malware(event, tags)),
        "identifier": malware["name"] if malware else None,
        "references": references[:50],
        "extra": {k: v for k, v in _extra(event).items() if v},
    }
    if data["time_observation"] is None:
        raise Rejected("timestamp", "the event has neither timestamp nor date")
    if distribution == "0":
        data["tlp"], data["recipients"] = "RED", [context.owner] if context.owner else []
    elif distribution == "4":
        group = event.get("SharingGroup")
        name = text(group.get("name"), "SharingGroup.name", 128) if isinstance(group, dict) else None
        if name is None:
            raise Rejected("SharingGroup", "distribution 4 (sharing group) without the group's name")
        data["sharing_groups"] = [name]
        # A sharing group restricts the event to its members: at least AMBER, or TLP would let
        # everyone have it.
        current = data["tlp"] or context.default_tlp
        data["tlp"] = max(current, "AMBER", key=_TLP_RANK.index)
    if not indicators and parsed.rejected:
        return parsed
    parsed.alerts = [
        build(data | {"indicators": c}, context) for c in split_indicators(indicators, MAX_INDICATORS)
    ]
    return parsed


def _attributes(event: dict[str, Any], parsed: Parsed) -> tuple[list[dict[str, str]], list[str]]:
    indicators: list[dict[str, str]] = []
    references: list[str] = []
    located: list[tuple[str, Any]] = []
    attributes = event.get("Attribute")
    located += [
        (f"Attribute[{i}]", a) for i, a in enumerate(attributes if isinstance(attributes, list) else [])
    ]
    objects = event.get("Object")
    for j, obj in enumerate(objects if isinstance(objects, list) else []):
        inner = obj.get("Attribute") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or str(obj.get("distribution", "")) == "0" or obj.get("deleted") is True:
            continue
        located += [
            (f"Object[{j}].Attribute[{i}]", a) for i, a in enumerate(inner if isinstance(inner, list) else [])
        ]
    seen: set[tuple[str, str]] = set()
    for where, attribute in located:
        if not isinstance(attribute, dict) or attribute.get("deleted") is True:
            continue
        if str(attribute.get("distribution", "")) == "0":
            parsed.skipped["misp attribute distribution 0"] += 1
            continue
        kind, value = attribute.get("type"), attribute.get("value")
        if kind == "link" and isinstance(value, str):
            references.append(value[:2048])
            continue
        if not attribute.get("to_ids") or not isinstance(kind, str) or kind not in _TYPES:
            continue
        try:
            for item in _indicators(kind, value):
                if (item["type"], item["value"]) not in seen:
                    seen.add((item["type"], item["value"]))
                    indicators.append(item)
        except Rejected as rejected:
            parsed.rejected.append(rejected.at(where))
    return indicators, references


def _indicators(kind: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, str):
        raise Rejected("value", f"expected a string, got {type(value).__name__}")
    parts = value.split("|") if "|" in kind else [value]
    shape = _TYPES[kind]
    if len(parts) != len(shape):
        raise Rejected("value", f"a {kind} value has {len(shape)} parts separated by |, got {len(parts)}")
    return [observables.indicator(k, part, "Attribute") for k, part in zip(shape, parts, strict=True) if k]


def _tags(event: dict[str, Any]) -> list[str]:
    tags = event.get("Tag")
    return (
        [t["name"] for t in tags if isinstance(t, dict) and isinstance(t.get("name"), str)]
        if isinstance(tags, list)
        else []
    )


def _tlp(tags: list[str]) -> str | None:
    found = [
        _TLP[t.split(":", 1)[1].strip().lower()]
        for t in tags
        if t.lower().startswith("tlp:") and t.split(":", 1)[1].strip().lower() in _TLP
    ]
    return max(found, key=_TLP_RANK.index) if found else None


def _classification(tags: list[str], context: ParseContext) -> tuple[str, str]:
    for tag in tags:
        match = _TAXONOMY_TAG.match(tag.strip())
        if match:
            return classify(match.group(1), match.group(2), "Tag")
    if context.classification:
        klass, _, kind = context.classification.partition("/")
        return klass, kind
    return "other", "undetermined"


def _malware(event: dict[str, Any], tags: list[str]) -> dict[str, Any] | None:
    galaxies = event.get("Galaxy")
    for galaxy in galaxies if isinstance(galaxies, list) else ():
        if isinstance(galaxy, dict) and galaxy.get("type") in ("malpedia", "mitre-malware"):
            clusters = galaxy.get("GalaxyCluster")
            for cluster in clusters if isinstance(clusters, list) else ():
                if isinstance(cluster, dict) and isinstance(cluster.get("value"), str):
                    return {"name": cluster["value"][:256], "hashes": {}}
    for tag in tags:
        match = _MALWARE_TAG.match(tag.strip())
        if match:
            return {"name": match.group(1)[:256], "hashes": {}}
    return None


def _epoch(value: Any) -> int | None:
    if isinstance(value, str) and digits(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _extra(event: dict[str, Any]) -> dict[str, str]:
    org = event.get("Orgc")
    return {
        "misp_uuid": str(event.get("uuid") or "")[:64],
        "misp_org": str(org.get("name") or "")[:256] if isinstance(org, dict) else "",
        "misp_distribution": str(event.get("distribution") or "")[:8],
    }
