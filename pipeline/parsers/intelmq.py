"""IntelMQ harmonised events, one JSON object per line, as IntelMQ's file and Kafka outputs write them.

Keys are IntelMQ's dotted harmonisation names (`source.ip`, `classification.type`,
`feed.accuracy`, ...). Classes and types of IntelMQ's older harmonisation are mapped onto RSIT.
Keys this pipeline does not carry are kept as strings in `extra` (`extra.*` keys without their
prefix), never dropped silently; `raw` (base64 in IntelMQ) is not carried over.
"""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.alert import Alert
from pipeline.parsers.base import (
    ParseContext,
    Parsed,
    build,
    each,
    integer,
    ioc_indicators,
    json_object,
    lines,
    text,
)
from pipeline.rejected import Rejected
from pipeline.taxonomy import classify

_ENDPOINT = {
    "ip": "ip",
    "port": "port",
    "fqdn": "fqdn",
    "url": "url",
    "asn": "asn",
    "as_name": "as_name",
    "geolocation.cc": "cc",
}
_HASHES = {"malware.hash.md5": "md5", "malware.hash.sha1": "sha1", "malware.hash.sha256": "sha256"}
_DIRECT = {"classification.identifier": "identifier", "event_description.text": "description"}
_IGNORED = frozenset(
    {
        "raw",
        "classification.taxonomy",
        "classification.type",
        "time.source",
        "time.observation",
        "feed.name",
        "feed.provider",
        "feed.accuracy",
        "feed.code",
        "feed.documentation",
        "feed.url",
        "tlp",
        "malware.name",
        "protocol.transport",
        "protocol.application",
        "event_description.url",
        "extra",
    }
)


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """One harmonised event per line; each is one alert."""
    return each(lines(payload), lambda line: _event(json_object(line, "event"), context, line))


def _event(event: dict[str, Any], context: ParseContext, line: str) -> list[Alert]:
    taxonomy, kind = classify(
        text(event.get("classification.taxonomy"), "classification.taxonomy"),
        text(event.get("classification.type"), "classification.type"),
        "classification.type",
    )
    data: dict[str, Any] = {
        "time_observation": event.get("time.observation") or event.get("time.source"),
        "time_source": event.get("time.source"),
        "taxonomy": taxonomy,
        "type": kind,
        "tlp": event.get("tlp"),
        "confidence": _accuracy(event.get("feed.accuracy")),
        "source": _endpoint(event, "source"),
        "destination": _endpoint(event, "destination"),
        "protocol": _protocol(event),
        "malware": _malware(event),
        "references": [u for u in [text(event.get("event_description.url"), "event_description.url")] if u],
        "extra": _extra(event),
    }
    if data["time_observation"] is None:
        raise Rejected("time.observation", "missing (and no time.source)")
    for key, target in _DIRECT.items():
        data[target] = text(event.get(key), key)
    data["indicators"] = ioc_indicators(data)
    return [build(data, context, line.encode())]


def _accuracy(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and 0 <= value <= 100:
        return round(value)
    return integer(value, "feed.accuracy", 0, 100)


def _endpoint(event: dict[str, Any], side: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key, target in _ENDPOINT.items():
        value = event.get(f"{side}.{key}")
        if value is None or value == "":
            continue
        if target in ("port", "asn"):
            out[target] = integer(value, f"{side}.{key}", 0, 2**32 - 1)
        else:
            out[target] = text(value, f"{side}.{key}")
    return out or None


def _protocol(event: dict[str, Any]) -> dict[str, Any] | None:
    transport = text(event.get("protocol.transport"), "protocol.transport")
    application = text(event.get("protocol.application"), "protocol.application")
    if transport is None and application is None:
        return None
    return {"transport": transport and transport.lower(), "application": application and application.lower()}


def _malware(event: dict[str, Any]) -> dict[str, Any] | None:
    name = text(event.get("malware.name"), "malware.name")
    hashes = {kind: text(event.get(key), key) for key, kind in _HASHES.items() if event.get(key)}
    if name is None and not hashes:
        return None
    return {"name": name, "hashes": hashes}


def _extra(event: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    nested = event.get("extra")
    if isinstance(nested, dict):
        out.update({str(k): _string(v) for k, v in nested.items()})
    for key, value in event.items():
        if key.startswith("extra."):
            out[key[6:]] = _string(value)
        elif key.startswith(("source.", "destination.")):
            if key.split(".", 1)[1] not in _ENDPOINT:
                out[key] = _string(value)
        elif key not in _IGNORED and key not in _DIRECT and key not in _HASHES:
            out[key] = _string(value)
    return {k[:256]: v for k, v in list(out.items())[:200]}


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value[:4096]
    return orjson.dumps(value, default=str).decode()[:4096]
