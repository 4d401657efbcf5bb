"""ArcSight Common Event Format lines, with or without a syslog header before `CEF:`.

`CEF:Version|Vendor|Product|Version|Signature ID|Name|Severity|Extension`, with `\\|` and
`\\\\` escaped in the header and `\\=`, `\\\\`, `\\n`, `\\r` in extension values. Severity is
0-10 (ArcSight's bands: 0-3 low, 4-6 medium, 7-8 high, 9-10 critical) or one of Unknown, Low,
Medium, High, Very-High. The event time is `rt` (or `end`, `start`): epoch milliseconds or
ArcSight's `MMM dd yyyy HH:mm:ss[.SSS]` in UTC; a line without one is dated when it is read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pipeline.alert import Alert
from pipeline.observables import digits
from pipeline.parsers.base import ParseContext, Parsed, build, each, integer, lines, text
from pipeline.rejected import Rejected
from pipeline.taxonomy import classify

_HEADER_FIELDS = 7
_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z0-9_.\[\]-]+)=")
_NAMED_SEVERITY = {
    "unknown": "info",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "very-high": "critical",
}
_TIME_FORMATS = ("%b %d %Y %H:%M:%S.%f", "%b %d %Y %H:%M:%S", "%b %d %H:%M:%S.%f", "%b %d %H:%M:%S")
_ENDPOINTS = {
    "source": {"src": "ip", "c6a2": "ip", "spt": "port", "shost": "fqdn"},
    "destination": {"dst": "ip", "c6a3": "ip", "dpt": "port", "dhost": "fqdn", "request": "url"},
}
_EXTRA = (
    "act",
    "outcome",
    "suser",
    "duser",
    "fname",
    "fileHash",
    "externalId",
    "deviceExternalId",
    "msg",
    "requestMethod",
    "requestClientApplication",
    "dvc",
    "cnt",
)


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """One CEF event per line."""
    return each(lines(payload), lambda line: [_event(line, context)])


def split_header(line: str) -> tuple[list[str], str]:
    """The seven header fields (unescaped) and the raw extension text."""
    start = line.find("CEF:")
    if start < 0:
        raise Rejected("header", "no CEF: prefix in the line")
    fields: list[str] = []
    current: list[str] = []
    i, body = 0, line[start + 4 :]
    while i < len(body) and len(fields) < _HEADER_FIELDS:
        char = body[i]
        if char == "\\" and i + 1 < len(body) and body[i + 1] in "|\\":
            current.append(body[i + 1])
            i += 2
            continue
        if char == "|":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if len(fields) < _HEADER_FIELDS:
        raise Rejected(
            "header", f"expected {_HEADER_FIELDS} pipe-separated header fields, got {len(fields) + 1}"
        )
    return fields, body[i:]


def split_extension(extension: str) -> dict[str, str]:
    """Extension key=value pairs; a value runs until the next unescaped ` key=`."""
    out: dict[str, str] = {}
    matches = [m for m in _KEY.finditer(extension) if not _escaped(extension, m.end() - 1)]
    ends = [m.start() for m in matches[1:]] + [len(extension)]
    for this, end in zip(matches, ends, strict=False):
        value = extension[this.end() : end].rstrip()
        out[this.group(1)] = _unescape(value)
    return out


def _escaped(text_: str, position: int) -> bool:
    slashes = 0
    while position - slashes - 1 >= 0 and text_[position - slashes - 1] == "\\":
        slashes += 1
    return slashes % 2 == 1


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), value)


def _event(line: str, context: ParseContext) -> Alert:
    header, extension = split_header(line)
    version, vendor, product, device_version, signature_id, name, severity = header
    if not version.strip().isdigit():
        raise Rejected("header.version", f"not a CEF version: {version[:16]!r}")
    ext = split_extension(extension)
    taxonomy, kind = _classification(ext.get("cat"), context)
    labels = {ext.get(f"cs{n}Label"): ext.get(f"cs{n}") for n in range(1, 7) if ext.get(f"cs{n}Label")}
    extra = {k: ext[k][:1024] for k in _EXTRA if ext.get(k)} | {
        "device_vendor": vendor[:256],
        "device_product": product[:256],
        "device_version": device_version[:256],
        "signature_id": signature_id[:256],
    }
    extra |= {str(k)[:64]: str(v)[:1024] for k, v in labels.items() if v is not None}
    data: dict[str, Any] = {
        "time_observation": _time(ext, context),
        "sensor": text(ext.get("dvchost") or ext.get("dvc"), "dvchost", 256),
        "taxonomy": taxonomy,
        "type": kind,
        "identifier": text(name, "header.name", 1024),
        "severity": _severity(severity),
        "source": _endpoint(ext, "source"),
        "destination": _endpoint(ext, "destination"),
        "protocol": {
            "transport": ext["proto"].lower()[:16],
            "application": ext.get("app", "").lower()[:32] or None,
        }
        if ext.get("proto")
        else None,
        "description": text(ext.get("msg"), "msg"),
        "extra": {k: v for k, v in extra.items() if v},
    }
    if ext.get("fileHash"):
        digest = ext["fileHash"].strip().lower()
        kind_of = {32: "md5", 40: "sha1", 64: "sha256"}.get(len(digest))
        if kind_of:
            data["malware"] = {"name": None, "hashes": {kind_of: digest}}
    return build(data, context, line.encode())


def _classification(category: str | None, context: ParseContext) -> tuple[str, str]:
    if category:
        try:
            return classify(None, category, "cat")
        except Rejected:
            pass
    if context.classification:
        klass, _, kind = context.classification.partition("/")
        return klass, kind
    return "other", "undetermined"


def _severity(value: str) -> str:
    value = value.strip()
    if value.lower() in _NAMED_SEVERITY:
        return _NAMED_SEVERITY[value.lower()]
    number = integer(value, "header.severity", 0, 10)
    if number is None:
        raise Rejected("header.severity", "missing")
    return "low" if number <= 3 else "medium" if number <= 6 else "high" if number <= 8 else "critical"


def _time(ext: dict[str, str], context: ParseContext) -> datetime:
    for key in ("rt", "end", "start"):
        value = ext.get(key)
        if not value:
            continue
        value = value.strip()
        if digits(value):
            try:
                return datetime.fromtimestamp(int(value) / 1000, UTC)
            except (OverflowError, OSError, ValueError):
                raise Rejected(key, f"epoch milliseconds out of range: {value[:24]!r}") from None
        stamp = value.removesuffix(" UTC").removesuffix(" GMT").removesuffix("Z")
        for fmt in _TIME_FORMATS:
            try:
                moment = datetime.strptime(stamp, fmt)
            except ValueError:
                continue
            if "%Y" not in fmt:
                moment = moment.replace(year=context.now.year)
            return moment.replace(tzinfo=UTC)
        raise Rejected(key, f"not a CEF time (epoch ms or 'MMM dd yyyy HH:mm:ss'): {value[:40]!r}")
    return context.now


def _endpoint(ext: dict[str, str], side: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key, target in _ENDPOINTS[side].items():
        value = ext.get(key)
        if not value:
            continue
        out[target] = integer(value, key, 0, 65535) if target == "port" else value.strip()
    return out or None
