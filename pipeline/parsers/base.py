"""What every parser receives and returns, and the helpers they share.

A raw record may hold one item (an alert JSON object) or many (EVE lines, a STIX bundle's
indicators, a MISP event's attributes, CSV rows). Each item becomes alerts, a rejection that
names where it is, or a skip with a reason (a Suricata `flow` event, a revoked indicator):
one bad line never costs the good lines around it, and nothing is dropped without a count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson

from pipeline.alert import SEVERITIES, Alert, build_alert
from pipeline.feeds import FeedSpec
from pipeline.rejected import Rejected

T = TypeVar("T")

#: Bounds that keep one hostile record from costing more than its size.
MAX_ITEMS = 100_000


@dataclass(frozen=True, slots=True)
class ParseContext:
    """The feed a record comes from, its declared defaults, and the time now."""

    feed: str
    now: datetime
    default_tlp: str = "AMBER"
    default_confidence: int = 50
    default_severity: str = "medium"
    classification: str | None = None
    origin: str = "feed"
    owner: str | None = None
    keep_raw: bool = False
    spec: FeedSpec | None = None

    @classmethod
    def of(cls, spec: FeedSpec, now: datetime) -> ParseContext:
        return cls(
            feed=spec.id,
            now=now,
            default_tlp=spec.default_tlp,
            default_confidence=spec.default_confidence,
            default_severity=spec.default_severity,
            classification=spec.classification,
            origin=spec.origin,
            owner=spec.owner,
            keep_raw=spec.keep_raw,
            spec=spec,
        )

    def feed_record(self) -> dict[str, str]:
        provider, _, name = self.feed.partition("/")
        return {"provider": provider or "unknown", "name": name or provider or "unknown"}


class Skip(Exception):
    """An item that is deliberately not an alert; `reason` is a short fixed phrase for counting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Parsed:
    """What one raw record became."""

    alerts: list[Alert] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def outcome(self) -> str:
        """accepted (some alerts), rejected (none, and something was wrong) or skipped."""
        if self.alerts:
            return "accepted"
        return "rejected" if self.rejected else "skipped"


def each(items: Iterable[tuple[str, T]], handle: Callable[[T], list[Alert] | Parsed]) -> Parsed:
    """Run `handle` on every located item, collecting alerts, located rejections and skips.

    A handler returns the item's alerts, or a `Parsed` of its own when the item has parts that
    can fail on their own (a MISP event's attributes); their locations are kept.
    """
    parsed = Parsed()
    for count, (where, item) in enumerate(items):
        if count >= MAX_ITEMS:
            parsed.rejected.append(
                Rejected("payload", f"more than {MAX_ITEMS} items in one record", item=where)
            )
            break
        try:
            result = handle(item)
        except Rejected as rejected:
            parsed.rejected.append(rejected.at(where))
        except Skip as skip:
            parsed.skipped[skip.reason] += 1
        else:
            if isinstance(result, Parsed):
                parsed.alerts.extend(result.alerts)
                parsed.rejected.extend(
                    r.at(f"{where}.{r.item}" if r.item else where) for r in result.rejected
                )
                parsed.skipped.update(result.skipped)
            else:
                parsed.alerts.extend(result)
    return parsed


def text_of(payload: bytes) -> str:
    """The payload as UTF-8 text (a BOM is dropped), or a rejection naming the bad byte."""
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected("payload", f"not UTF-8 text: invalid byte at offset {exc.start}") from None


def lines(payload: bytes) -> Iterator[tuple[str, str]]:
    """The non-blank lines of a text payload, located as `line N` (1-based)."""
    for number, line in enumerate(text_of(payload).splitlines(), start=1):
        if line.strip():
            yield f"line {number}", line


def json_value(text: str | bytes, what: str = "payload") -> Any:
    """Any JSON value, or a rejection saying where the JSON is broken."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Rejected(what, f"not valid JSON: {exc}") from None


def json_object(text: str | bytes, what: str = "payload") -> dict[str, Any]:
    """One JSON object, or a rejection saying why not."""
    data = json_value(text, what)
    if not isinstance(data, dict):
        raise Rejected(what, f"expected a JSON object, got {type(data).__name__}")
    return data


def build(data: dict[str, Any], context: ParseContext, raw: bytes | None = None) -> Alert:
    """Fill what the record leaves out from the feed's declaration, then check it strictly."""
    claimed = data.get("feed")
    if context.spec is not None and isinstance(claimed, dict) and claimed:
        declared = context.feed_record()
        if (claimed.get("provider"), claimed.get("name")) != (declared["provider"], declared["name"]):
            said = f"{claimed.get('provider')}/{claimed.get('name')}"[:130]
            raise Rejected("feed", f"the record names feed {said} but was sent as feed {context.feed}")
        declared["partner"] = claimed.get("partner")
        data["feed"] = declared
    elif not claimed:
        data["feed"] = context.feed_record()
    if data.get("taxonomy") is None and data.get("type") is None and context.classification:
        data["taxonomy"], _, data["type"] = context.classification.partition("/")
    if data.get("severity") is None:
        data["severity"] = context.default_severity
    if data.get("confidence") is None:
        data["confidence"] = context.default_confidence
    if data.get("origin") is None:
        data["origin"] = context.origin
    if context.keep_raw and raw is not None:
        data["raw"] = raw
    return build_alert(data, default_tlp=context.default_tlp, now=context.now)


def text(value: Any, field: str, limit: int = 4096) -> str | None:
    """A scalar as bounded text (None stays None); containers are refused."""
    if value is None:
        return None
    if isinstance(value, bool | dict | list):
        raise Rejected(field, f"expected text, got {type(value).__name__}")
    out = str(value).strip()
    return out[:limit] if out else None


def integer(value: Any, field: str, low: int | None = None, high: int | None = None) -> int | None:
    """An integer from a number or its text (None and "" stay None), within [low, high]."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Rejected(field, "expected an integer, got a boolean")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise Rejected(field, f"expected an integer, got {str(value)[:32]!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise Rejected(field, f"{number} is outside {low}-{high}")
    return number


def severity_from_score(score: float, scale: float) -> str:
    """Map a score on 0..scale (higher is worse) onto info..critical."""
    position = min(max(score / scale, 0.0), 1.0)
    return SEVERITIES[min(int(position * len(SEVERITIES)), len(SEVERITIES) - 1)]


#: RSIT types whose `source` is the adversary's (a C2 server, a phishing site, a scanner), so its
#: address, name and URL are indicators; for the others (an infected or vulnerable host) the
#: source is a victim and must never be spread as an indicator.
IOC_TYPES = frozenset(
    [
        "c2-server",
        "malware-distribution",
        "malware-configuration",
        "phishing",
        "spam",
        "scanner",
        "brute-force",
        "exploit",
    ]
)


def ioc_indicators(data: dict[str, Any]) -> list[dict[str, str]]:
    """Indicators implied by an alert's fields: the source's observables when its type says the
    source is adversarial, and the malware's sample hashes always."""
    out: list[dict[str, str]] = list(data.get("indicators") or [])
    source = data.get("source") or {}
    if data.get("type") in IOC_TYPES:
        for key, kind in (("ip", "ip"), ("fqdn", "domain"), ("url", "url")):
            if isinstance(source.get(key), str) and source[key]:
                out.append({"type": kind, "value": source[key]})
    malware = data.get("malware") or {}
    for kind, digest in (malware.get("hashes") or {}).items():
        if isinstance(digest, str) and digest:
            out.append({"type": kind, "value": digest})
    return out


def split_indicators(indicators: list[dict[str, str]], size: int) -> list[list[dict[str, str]]]:
    """Cut a long indicator list into chunks of at most `size` (one alert each)."""
    if not indicators:
        return [[]]
    return [indicators[i : i + size] for i in range(0, len(indicators), size)]
