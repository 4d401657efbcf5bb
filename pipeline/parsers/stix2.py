"""STIX 2.1 bundles: indicators, sightings and observed data become alerts.

- An `indicator` with a STIX pattern becomes one alert whose indicators are the pattern's
  equality comparisons on IPv4/IPv6 addresses, domain names, URLs, e-mail addresses and file
  hashes (the pattern is parsed with the OASIS `stix2-patterns` grammar, not with regular
  expressions). Revoked, expired (`valid_until` passed) and `benign` indicators are skipped and
  counted; patterns of other languages (YARA, Sigma, Snort) too.
- A `sighting` becomes an alert carrying the sighted indicator's observables, its `count`,
  `first_seen` and `last_seen`.
- `observed-data` becomes an alert with the observables it references (or embeds, in the
  deprecated `objects` form); network traffic gives the source and destination.
- TLP comes from `object_marking_refs`: the TLP 1.0 marking definitions of the STIX 2.1 spec,
  the TLP 2.0 ones, or a marking definition in the bundle named `TLP:...`. An object without a
  TLP marking takes the feed's default.
- `indicates` relationships to a `malware` name the malware; a name containing "phish"
  classifies as fraud/phishing. Otherwise network indicators of malware are c2-server (URLs:
  malware-distribution), the rest takes the feed's declared classification.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stix2patterns.pattern import ParseException, Pattern

from pipeline.alert import MAX_INDICATORS, Alert, parse_time
from pipeline.parsers.base import ParseContext, Parsed, Skip, build, each, json_object, split_indicators, text
from pipeline.rejected import Rejected

#: Marking definition ids of TLP 1.0 (STIX 2.1, section 7.2.1.4) and TLP 2.0 (OASIS TC extension).
TLP2_MARKINGS = {
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "CLEAR",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "GREEN",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "AMBER",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "AMBER+STRICT",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "RED",
}
TLP_MARKINGS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "CLEAR",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "GREEN",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "AMBER",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "RED",
} | TLP2_MARKINGS
_TLP_RANK = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
#: (object type, property path) of a pattern comparison -> indicator type.
_PATTERN_PATHS = {
    ("ipv4-addr", ("value",)): "ipv4",
    ("ipv6-addr", ("value",)): "ipv6",
    ("domain-name", ("value",)): "domain",
    ("url", ("value",)): "url",
    ("email-addr", ("value",)): "email",
    ("email-message", ("from_ref", "value")): "email",
    ("file", ("hashes", "MD5")): "md5",
    ("file", ("hashes", "SHA-1")): "sha1",
    ("file", ("hashes", "SHA1")): "sha1",
    ("file", ("hashes", "SHA-256")): "sha256",
    ("file", ("hashes", "SHA256")): "sha256",
    ("file", ("hashes", "SHA-512")): "sha512",
    ("network-traffic", ("dst_ref", "value")): "ip",
    ("network-traffic", ("src_ref", "value")): "ip",
}
_SCO_TYPES = {
    "ipv4-addr": "ipv4",
    "ipv6-addr": "ipv6",
    "domain-name": "domain",
    "url": "url",
    "email-addr": "email",
}
_HASH_NAMES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA1": "sha1",
    "SHA-256": "sha256",
    "SHA256": "sha256",
    "SHA-512": "sha512",
}


#: What an `indicates` relationship may point at to name the threat behind an indicator.
_INDICATED = ("malware", "attack-pattern", "campaign")


class Bundle:
    """The objects of one bundle by id, with the relationships and markings they need."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.by_id = {o["id"]: o for o in objects if isinstance(o.get("id"), str)}
        self.malware_of: dict[str, list[dict[str, Any]]] = {}
        for rel in objects:
            if rel.get("type") == "relationship" and rel.get("relationship_type") == "indicates":
                target = self.by_id.get(_s(rel, "target_ref"))
                source = _s(rel, "source_ref")
                if target is not None and source and _s(target, "type") in _INDICATED:
                    self.malware_of.setdefault(source, []).append(target)

    def tlp(self, obj: dict[str, Any]) -> str | None:
        """The most restrictive TLP among the object's markings, if any is a TLP marking."""
        found = []
        refs = obj.get("object_marking_refs")
        for ref in refs if isinstance(refs, list) else ():
            if not isinstance(ref, str):
                continue
            label = TLP_MARKINGS.get(ref) or _marking_label(self.by_id.get(ref))
            if label:
                found.append(label)
        return max(found, key=_TLP_RANK.index) if found else None


def _s(obj: dict[str, Any], key: str) -> str:
    """A property that must be text (an id, a type, a reference); anything else reads as ""."""
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _marking_label(marking: dict[str, Any] | None) -> str | None:
    if not marking or marking.get("type") != "marking-definition":
        return None
    definition = marking.get("definition")
    if marking.get("definition_type") == "tlp" and isinstance(definition, dict):
        name = str(definition.get("tlp", "")).upper()
    else:
        name = str(marking.get("name", "")).upper().removeprefix("TLP:")
    name = {"WHITE": "CLEAR"}.get(name, name)
    return name if name in _TLP_RANK else None


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """Every indicator, sighting and observed-data object of a bundle (or of one bare object)."""
    data = json_object(payload)
    if data.get("type") == "bundle":
        objects = data.get("objects", [])
        if not isinstance(objects, list):
            raise Rejected("objects", "expected a list")
    elif isinstance(data.get("type"), str):
        objects = [data]
    else:
        raise Rejected("type", "expected a STIX bundle or a STIX object")
    objects = [o for o in objects if isinstance(o, dict)]
    bundle = Bundle(objects)
    items = ((f"objects[{i}]", o) for i, o in enumerate(objects) if _s(o, "type") in _HANDLERS)
    return each(items, lambda obj: _HANDLERS[obj["type"]](obj, bundle, context))


def _indicator(obj: dict[str, Any], bundle: Bundle, context: ParseContext) -> list[Alert]:
    if obj.get("revoked") is True:
        raise Skip("stix indicator revoked")
    types = obj.get("indicator_types") if isinstance(obj.get("indicator_types"), list) else []
    if "benign" in types:
        raise Skip("stix indicator benign")
    if obj.get("pattern_type", "stix") != "stix":
        raise Skip("stix pattern not in the stix language")
    until = obj.get("valid_until")
    if until is not None and parse_time(until, "valid_until") <= context.now:
        raise Skip("stix indicator expired")
    pattern = obj.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise Rejected("pattern", "missing")
    indicators = pattern_indicators(pattern)
    if not indicators:
        raise Skip("stix pattern without a supported observable")
    malware = bundle.malware_of.get(_s(obj, "id"), [])
    return _alerts(
        obj, bundle, context, indicators, malware, observed=obj.get("modified") or obj.get("created")
    )


def pattern_indicators(pattern: str) -> list[dict[str, str]]:
    """The equality comparisons of a STIX pattern on observables this pipeline carries."""
    try:
        parsed = Pattern(pattern)
    except (ParseException, ValueError, TypeError, RecursionError) as exc:
        raise Rejected("pattern", f"not a valid STIX pattern: {str(exc)[:200]}") from None
    out = []
    for object_type, comparisons in parsed.inspect().comparisons.items():
        for path, operator, value in comparisons:
            kind = _PATTERN_PATHS.get((object_type, tuple(str(p) for p in path)))
            if kind is None or operator != "=" or not isinstance(value, str) or not value.startswith("'"):
                continue
            out.append({"type": kind, "value": value[1:-1].replace("\\'", "'").replace("\\\\", "\\")})
    return out


def _sighting(obj: dict[str, Any], bundle: Bundle, context: ParseContext) -> list[Alert]:
    sighted = bundle.by_id.get(_s(obj, "sighting_of_ref"))
    indicators: list[dict[str, str]] = []
    malware: list[dict[str, Any]] = []
    if sighted is not None and sighted.get("type") == "indicator" and isinstance(sighted.get("pattern"), str):
        indicators = (
            pattern_indicators(sighted["pattern"]) if sighted.get("pattern_type", "stix") == "stix" else []
        )
        malware = bundle.malware_of.get(sighted["id"], [])
    refs = obj.get("observed_data_refs") if isinstance(obj.get("observed_data_refs"), list) else []
    for ref in refs:
        observed = bundle.by_id.get(ref) if isinstance(ref, str) else None
        if observed is not None:
            indicators += [i for _, i in _observables(observed, bundle)]
    if not indicators:
        raise Skip("stix sighting without a supported observable")
    data = {
        "count": obj.get("count") if isinstance(obj.get("count"), int) and obj.get("count") > 0 else 1,
        "first_seen": obj.get("first_seen"),
        "last_seen": obj.get("last_seen"),
    }
    observed = obj.get("last_seen") or obj.get("modified") or obj.get("created")
    return _alerts(obj, bundle, context, indicators, malware, observed, data, sighted)


def _observed_data(obj: dict[str, Any], bundle: Bundle, context: ParseContext) -> list[Alert]:
    found = list(_observables(obj, bundle))
    if not found:
        raise Skip("stix observed-data without a supported observable")
    data: dict[str, Any] = {
        "count": obj.get("number_observed") if isinstance(obj.get("number_observed"), int) else 1
    }
    for role, item in found:
        if role in ("source", "destination") and item["type"] in ("ipv4", "ipv6"):
            data.setdefault(role, {})["ip"] = item["value"]
    traffic = _traffic(obj, bundle)
    if traffic is not None:
        for side, key in (("source", "src_port"), ("destination", "dst_port")):
            if isinstance(traffic.get(key), int) and side in data:
                data[side]["port"] = traffic[key]
    observed = obj.get("last_observed") or obj.get("modified")
    # Addresses at either end of observed traffic are where it was seen, one of them usually a
    # member's own host: they go to the endpoints, never into the indicators.
    indicators = [i for role, i in found if role == "observable"]
    return _alerts(obj, bundle, context, indicators, [], observed, data)


_HANDLERS = {"indicator": _indicator, "sighting": _sighting, "observed-data": _observed_data}


def _observables(obj: dict[str, Any], bundle: Bundle) -> Iterator[tuple[str, dict[str, str]]]:
    """(role, indicator) for each supported observable an observed-data object refers to."""
    refs = obj.get("object_refs")
    embedded = obj.get("objects")
    if isinstance(refs, list):
        scos = {r: bundle.by_id.get(r) for r in refs if isinstance(r, str)}
    elif isinstance(embedded, dict):
        scos = {k: v for k, v in embedded.items() if isinstance(v, dict)}
    else:
        return
    roles: dict[str, str] = {}
    for sco in scos.values():
        if sco is not None and sco.get("type") == "network-traffic":
            for side, key in (("source", "src_ref"), ("destination", "dst_ref")):
                if isinstance(sco.get(key), str):
                    roles[sco[key]] = side
    for key, sco in scos.items():
        if sco is None:
            continue
        kind = _SCO_TYPES.get(_s(sco, "type"))
        if kind and isinstance(sco.get("value"), str):
            yield roles.get(key, "observable"), {"type": kind, "value": sco["value"]}
        elif sco.get("type") == "file" and isinstance(sco.get("hashes"), dict):
            for name, digest in sco["hashes"].items():
                if name in _HASH_NAMES and isinstance(digest, str):
                    yield "observable", {"type": _HASH_NAMES[name], "value": digest}


def _traffic(obj: dict[str, Any], bundle: Bundle) -> dict[str, Any] | None:
    refs = obj.get("object_refs") if isinstance(obj.get("object_refs"), list) else []
    for ref in refs:
        sco = bundle.by_id.get(ref) if isinstance(ref, str) else None
        if sco is not None and sco.get("type") == "network-traffic":
            return sco
    return None


def _alerts(
    obj: dict[str, Any],
    bundle: Bundle,
    context: ParseContext,
    indicators: list[dict[str, str]],
    malware: list[dict[str, Any]],
    observed: Any,
    data: dict[str, Any] | None = None,
    about: dict[str, Any] | None = None,
) -> list[Alert]:
    if observed is None:
        raise Rejected("modified", "no time on the object (modified, created, last_seen)")
    subject = about or obj
    name = next(
        (text(m.get("name"), "malware.name", 256) for m in malware if m.get("type") == "malware"), None
    )
    label = " ".join(str(x) for x in (subject.get("name"), name, subject.get("labels")) if x).lower()
    taxonomy, kind = _classify(indicators, malware, label, context)
    confidence = subject.get("confidence")
    base: dict[str, Any] = dict(data or {})
    base |= {
        "time_observation": observed,
        "time_source": subject.get("valid_from"),
        "taxonomy": taxonomy,
        "type": kind,
        "identifier": text(subject.get("name"), "name", 1024) or name,
        "description": text(subject.get("description"), "description"),
        "tlp": bundle.tlp(obj) or bundle.tlp(subject),
        "confidence": confidence if isinstance(confidence, int) and 0 <= confidence <= 100 else None,
        "malware": {"name": name, "hashes": {}} if name else None,
        "references": _references(subject),
        "extra": {"stix_id": str(obj.get("id", ""))[:256]},
    }
    return [
        build(base | {"indicators": chunk}, context) for chunk in split_indicators(indicators, MAX_INDICATORS)
    ]


def _classify(
    indicators: list[dict[str, str]], malware: list[dict[str, Any]], label: str, context: ParseContext
) -> tuple[str, str]:
    if "phish" in label:
        return "fraud", "phishing"
    kinds = {i["type"] for i in indicators}
    if malware:
        if "url" in kinds:
            return "malicious-code", "malware-distribution"
        if kinds & {"ipv4", "ipv6", "domain", "ip"}:
            return "malicious-code", "c2-server"
        return "malicious-code", "malware-configuration"
    if context.classification:
        klass, _, kind = context.classification.partition("/")
        return klass, kind
    return "other", "undetermined"


def _references(obj: dict[str, Any]) -> list[str]:
    refs = obj.get("external_references")
    out = []
    for ref in refs if isinstance(refs, list) else ():
        if isinstance(ref, dict) and isinstance(ref.get("url"), str):
            out.append(ref["url"][:2048])
    return out[:50]
