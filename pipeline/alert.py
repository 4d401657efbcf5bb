"""The alert: its schema, its vocabularies, and a strict builder from untrusted mappings.

An alert is a plain `dict` shaped exactly like `schemas/alert.avsc` (fastavro reads and writes
dicts natively, and a dict is the cheapest thing to pass between pure functions). `build_alert`
is the one door from untrusted input into that shape: it checks every field against the schema
and the vocabularies below and raises `Rejected` naming the first field that is wrong.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline import observables
from pipeline.rejected import Rejected

Alert = dict[str, Any]

SCHEMA_VERSION = 1

TLP_LEVELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
TLP_ALIASES = {"WHITE": "CLEAR", "AMBER-STRICT": "AMBER+STRICT", "AMBER_STRICT": "AMBER+STRICT"}
SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
ORIGINS = ("ids", "honeypot", "sinkhole", "sandbox", "darknet", "feed", "manual")

#: Reference Security Incident Taxonomy (RSIT, Working Group's 2023 revision): class -> types.
RSIT: dict[str, tuple[str, ...]] = {
    "abusive-content": ("spam", "harmful-speech", "violence"),
    "malicious-code": (
        "infected-system",
        "c2-server",
        "malware-distribution",
        "malware-configuration",
    ),
    "information-gathering": ("scanner", "sniffing", "social-engineering"),
    "intrusion-attempts": ("ids-alert", "brute-force", "exploit"),
    "intrusions": (
        "privileged-account-compromise",
        "unprivileged-account-compromise",
        "application-compromise",
        "system-compromise",
        "burglary",
    ),
    "availability": ("dos", "ddos", "misconfiguration", "sabotage", "outage"),
    "information-content-security": (
        "unauthorised-information-access",
        "unauthorised-information-modification",
        "data-loss",
        "data-leak",
    ),
    "fraud": ("unauthorised-use-of-resources", "copyright", "masquerade", "phishing"),
    "vulnerable": (
        "weak-crypto",
        "ddos-amplifier",
        "potentially-unwanted-accessible",
        "information-disclosure",
        "vulnerable-system",
    ),
    "other": ("other", "undetermined"),
    "test": ("test",),
}

#: The NIS2 sectors (Annexes I and II of Directive (EU) 2022/2555), as short identifiers.
SECTORS = (
    "energy",
    "transport",
    "banking",
    "financial-market-infrastructure",
    "health",
    "drinking-water",
    "waste-water",
    "digital-infrastructure",
    "ict-service-management",
    "public-administration",
    "space",
    "postal-and-courier",
    "waste-management",
    "chemicals",
    "food",
    "manufacturing",
    "digital-providers",
    "research",
)

#: Observations further than this in the future are clock errors or forgeries.
MAX_FUTURE = timedelta(minutes=15)
#: Observations older than this are history, not alerts.
MAX_PAST = timedelta(days=365)
MAX_STRING = 4096
MAX_LIST = 1000
#: An alert carries at most this many indicators; larger sets are split by their parser.
MAX_INDICATORS = 500


def schema_path() -> Path:
    """Locate `alert.avsc` in a source checkout or an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        path = candidate / "alert.avsc"
        if path.exists():
            return path
    raise FileNotFoundError("schemas/alert.avsc not found beside the pipeline package")


def load_schema() -> dict[str, Any]:
    """Return the alert schema as parsed JSON."""
    return orjson.loads(schema_path().read_bytes())


def parse_time(value: Any, field: str) -> datetime:
    """Read an RFC 3339 string or epoch seconds as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, bool):
        raise Rejected(field, "expected an RFC 3339 time or epoch seconds, got a boolean")
    elif isinstance(value, int | float):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise Rejected(field, f"epoch seconds out of range: {value!r}") from exc
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise Rejected(field, f"not an RFC 3339 time: {value[:64]!r}") from exc
    else:
        raise Rejected(field, f"expected a time, got {type(value).__name__}")
    if moment.tzinfo is None:
        raise Rejected(field, "time has no UTC offset")
    return moment.astimezone(UTC)


def canonical_tlp(value: Any, field: str = "tlp") -> str:
    """Map a TLP label (any case, `TLP:` prefix allowed, WHITE as CLEAR) to a TLP 2.0 level."""
    if not isinstance(value, str):
        raise Rejected(field, f"expected a TLP label, got {type(value).__name__}")
    label = value.strip().upper().removeprefix("TLP:")
    label = TLP_ALIASES.get(label, label)
    if label not in TLP_LEVELS:
        raise Rejected(field, f"unknown TLP label {value[:32]!r}; expected one of {TLP_LEVELS}")
    return label


Check = Callable[[Any], Any]


class _SchemaChecker:
    """Checks and converts a JSON-like mapping against the Avro record schema, field by field.

    The schema is compiled once into one small function per node, each knowing its own field
    path, so checking an alert walks no schema and formats no path unless a field is wrong.
    Items of lists and values of maps share one function; their index or key is put into the
    path only when one of them is rejected.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.named: dict[str, Any] = {}
        self._collect(schema)
        self.check: Check = self._compile(schema, "")

    def _collect(self, node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("record", "enum") and "name" in node:
                self.named[node["name"]] = node
            for value in node.values():
                self._collect(value)
        elif isinstance(node, list):
            for item in node:
                self._collect(item)

    def _compile(self, node: Any, path: str) -> Check:
        if isinstance(node, str):
            node = self.named.get(node, node)
        if isinstance(node, list):  # union: only ["null", X] is used by the alert schema
            return self._compile(next(b for b in node if b != "null"), path)
        if not isinstance(node, dict):
            return _primitive(node, path)
        kind = node["type"]
        if node.get("logicalType") == "timestamp-micros":
            return lambda value: parse_time(value, path)
        if kind == "record":
            return self._record(node, path)
        if kind == "enum":
            return _enum(node, path)
        if kind == "array":
            return _array(self._compile(node["items"], f"{path}[]"), path)
        if kind == "map":
            return _map(self._compile(node["values"], f"{path}.*"), path)
        return self._compile(kind, path)

    def _record(self, node: dict[str, Any], path: str) -> Check:
        known = frozenset(f["name"] for f in node["fields"])
        missing = object()
        fields = [
            (
                f["name"],
                self._compile(f["type"], _join(path, f["name"])),
                f.get("default", missing),
                _join(path, f["name"]),
            )
            for f in node["fields"]
        ]
        where = path or "alert"

        def record(value: Any) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise Rejected(where, f"expected an object, got {type(value).__name__}")
            if not known.issuperset(value):
                unknown = sorted(str(k) for k in value if k not in known)
                raise Rejected(_join(path, unknown[0][:64] or '""'), "unknown field")
            out: dict[str, Any] = {}
            for name, check, default, field_path in fields:
                item = value.get(name)
                if item is not None:
                    out[name] = check(item)
                elif default is not missing:
                    out[name] = _copy_default(default)
                else:
                    raise Rejected(field_path, "required field is missing")
            return out

        return record


def _relocated(rejected: Rejected, pattern: str, actual: str) -> Rejected:
    """`rejected` with the placeholder path `pattern` at the start of its field made `actual`."""
    if not rejected.field.startswith(pattern):
        return rejected
    return Rejected(actual + rejected.field[len(pattern) :], rejected.reason, rejected.feed, rejected.item)


def _array(item: Check, path: str) -> Check:
    pattern = f"{path}[]"

    def array(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise Rejected(path, f"expected a list, got {type(value).__name__}")
        if len(value) > MAX_LIST:
            raise Rejected(path, f"more than {MAX_LIST} items")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(item(v))
            except Rejected as exc:
                raise _relocated(exc, pattern, f"{path}[{i}]") from None
        return out

    return array


def _map(item: Check, path: str) -> Check:
    pattern = f"{path}.*"

    def mapping(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise Rejected(path, f"expected an object, got {type(value).__name__}")
        out = {}
        for k, v in value.items():
            try:
                out[str(k)] = item(v)
            except Rejected as exc:
                raise _relocated(exc, pattern, f"{path}.{k}") from None
        return out

    return mapping


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _copy_default(default: Any) -> Any:
    return type(default)() if isinstance(default, list | dict) else default


def _uuid(value: Any, path: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise Rejected(path, f"not a UUID: {str(value)[:64]!r}") from exc


def _enum(node: dict[str, Any], path: str) -> Check:
    symbols = frozenset(node["symbols"])
    listed = ", ".join(node["symbols"])

    def enum(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in symbols:
            raise Rejected(path, f"{str(value)[:32]!r} is not one of {listed}")
        return text

    return enum


def _primitive(kind: str, path: str) -> Check:
    if kind == "string":

        def string(value: Any) -> str:
            if not isinstance(value, str):
                raise Rejected(path, f"expected a string, got {type(value).__name__}")
            if len(value) > MAX_STRING:
                raise Rejected(path, f"string longer than {MAX_STRING} characters")
            return _strip_controls(value)

        return string
    if kind in ("int", "long"):
        limit = 2**31 if kind == "int" else 2**63

        def integer(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise Rejected(path, f"expected an integer, got {type(value).__name__}")
            if not -limit <= value < limit:
                raise Rejected(path, f"integer out of range: {value}")
            return value

        return integer
    if kind == "bytes":

        def binary(value: Any) -> bytes:
            if isinstance(value, bytes):
                return value
            raise Rejected(path, "expected bytes")

        return binary

    def unsupported(value: Any) -> Any:
        raise Rejected(path, f"unsupported schema type {kind}")

    return unsupported


_CONTROLS = {c: None for c in range(32) if c not in (9, 10, 13)} | {127: None}


def _strip_controls(text: str) -> str:
    # Control characters break terminals, CEF and syslog framing at the members' end.
    return text.translate(_CONTROLS) if not text.isprintable() else text


def _country(value: str, field: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or not code.isalpha() or not code.isascii():
        raise Rejected(field, f"not an ISO 3166-1 alpha-2 country code: {value[:16]!r}")
    return code


@functools.cache
def _checker() -> Check:
    return _SchemaChecker(load_schema()).check


def build_alert(data: Mapping[str, Any], *, default_tlp: str = "AMBER", now: datetime | None = None) -> Alert:
    """Turn an untrusted mapping into a valid alert or raise `Rejected`.

    Checks the structure against the schema, then the meaning: known RSIT class and type,
    confidence 0-100, ports 0-65535, IP addresses (canonicalised), TLP (WHITE read as CLEAR,
    a missing label takes `default_tlp`, an unknown one is rejected) and an observation time
    that is neither in the future beyond `MAX_FUTURE` nor older than `MAX_PAST`.
    A missing `id` gets a new UUID; `schema_version` is always the current one.
    """
    data = dict(data)
    if data.get("tlp") is None:
        data["tlp"] = default_tlp
    else:
        data["tlp"] = canonical_tlp(data["tlp"])
    data["id"] = str(uuid.uuid4()) if data.get("id") is None else _uuid(data["id"], "id")
    data["schema_version"] = SCHEMA_VERSION
    alert = _checker()(data)
    _check_meaning(alert, now or datetime.now(UTC))
    return alert


def _check_meaning(alert: Alert, now: datetime) -> None:
    taxonomy, kind = alert["taxonomy"], alert["type"]
    if taxonomy not in RSIT:
        raise Rejected("taxonomy", f"{taxonomy[:48]!r} is not an RSIT class")
    if kind not in RSIT[taxonomy]:
        raise Rejected("type", f"{kind[:48]!r} is not an RSIT type of {taxonomy}")
    if not 0 <= alert["confidence"] <= 100:
        raise Rejected("confidence", f"must be 0-100, got {alert['confidence']}")
    for side in ("source", "destination"):
        endpoint = alert[side]
        if endpoint is None:
            continue
        if endpoint["ip"] is not None:
            endpoint["ip"] = observables.canonical_ip(endpoint["ip"], f"{side}.ip")
        if endpoint["port"] is not None and not 0 <= endpoint["port"] <= 65535:
            raise Rejected(f"{side}.port", f"must be 0-65535, got {endpoint['port']}")
        if endpoint["fqdn"] is not None:
            endpoint["fqdn"] = observables.canonical_domain(endpoint["fqdn"], f"{side}.fqdn")
        if endpoint["url"] is not None:
            endpoint["url"] = observables.canonical_url(endpoint["url"], f"{side}.url")
        if endpoint["asn"] is not None and not 0 < endpoint["asn"] < 2**32:
            raise Rejected(f"{side}.asn", f"not an AS number: {endpoint['asn']}")
        if endpoint["cc"] is not None:
            endpoint["cc"] = _country(endpoint["cc"], f"{side}.cc")
    if len(alert["indicators"]) > MAX_INDICATORS:
        count = len(alert["indicators"])
        raise Rejected("indicators", f"{count} indicators exceed the limit of {MAX_INDICATORS}")
    seen: set[tuple[str, str]] = set()
    indicators = []
    for i, item in enumerate(alert["indicators"]):
        canonical = observables.indicator(item["type"], item["value"], f"indicators[{i}]")
        if (canonical["type"], canonical["value"]) not in seen:
            seen.add((canonical["type"], canonical["value"]))
            indicators.append(canonical)
    alert["indicators"] = indicators
    if alert["malware"] is not None:
        malware = alert["malware"]
        malware["name"] = malware["name"].strip().lower() if malware["name"] else malware["name"]
        malware["hashes"] = {
            kind: observables.canonical_hash(kind, value, f"malware.hashes.{kind}")
            for kind, value in ((k.lower().replace("-", ""), v) for k, v in malware["hashes"].items())
        }
    observed = alert["time_observation"]
    if observed > now + MAX_FUTURE:
        raise Rejected("time_observation", f"{observed.isoformat()} is in the future")
    if observed < now - MAX_PAST:
        raise Rejected("time_observation", f"{observed.isoformat()} is older than {MAX_PAST.days} days")
