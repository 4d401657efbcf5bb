"""Fingerprints and the sliding dedup window.

The fingerprint identifies "the same event seen again": the feed, the RSIT class and type, the
identifier, both endpoints, the indicators and the malware name. Times, ids, severity,
confidence and free text are left out, so a sensor re-reporting an event yields the same
fingerprint. The window slides: a sighting within `window` of the previous sighting of the same
fingerprint is a duplicate, and it pushes the window on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import orjson

from pipeline.alert import Alert

_EPOCH_US = 1_000_000


def fingerprint(alert: Alert) -> str:
    """Return the 32-hex-digit fingerprint of an alert (stable across processes and versions)."""
    source, destination = alert.get("source") or {}, alert.get("destination") or {}
    malware = alert.get("malware") or {}
    parts = (
        alert["feed"]["provider"],
        alert["feed"]["name"],
        alert["taxonomy"],
        alert["type"],
        alert.get("identifier"),
        [source.get(k) for k in ("ip", "port", "fqdn", "url")],
        [destination.get(k) for k in ("ip", "port", "fqdn", "url")],
        sorted((i["type"], i["value"]) for i in alert.get("indicators", ())),
        malware.get("name"),
    )
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Seen:
    """What the dedup table keeps per fingerprint.

    `origin` is the (partition, offset) of the record that opened the window: when that same
    record is read again after a crash, it is forwarded again instead of being taken for its own
    duplicate, so at-least-once processing never turns into loss.
    """

    first_us: int
    last_us: int
    count: int
    origin: tuple[int, int]

    def to_bytes(self) -> bytes:
        return orjson.dumps([self.first_us, self.last_us, self.count, *self.origin])

    @classmethod
    def from_bytes(cls, data: bytes) -> Seen:
        first, last, count, partition, offset = orjson.loads(data)
        return cls(first, last, count, (partition, offset))


class Verdict(Enum):
    NEW = "new"
    REPLAY = "replay"
    DUPLICATE = "duplicate"


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * _EPOCH_US)


def observe(
    seen: Seen | None, observed_us: int, origin: tuple[int, int], window_us: int
) -> tuple[Seen, Verdict]:
    """Decide whether a sighting is new, a replay of the opening record, or a duplicate.

    Returns the state to store and the verdict. A sighting older than the latest one does not
    move the window back.
    """
    if seen is not None and seen.origin == origin:
        return seen, Verdict.REPLAY
    if seen is None or observed_us - seen.last_us > window_us:
        return Seen(observed_us, observed_us, 1, origin), Verdict.NEW
    updated = Seen(
        min(seen.first_us, observed_us), max(seen.last_us, observed_us), seen.count + 1, seen.origin
    )
    return updated, Verdict.DUPLICATE


def stamp(alert: Alert, seen: Seen) -> Alert:
    """Write the window's aggregation onto an alert that is about to be forwarded."""
    alert["count"] = seen.count
    alert["first_seen"] = datetime.fromtimestamp(seen.first_us / _EPOCH_US, UTC)
    alert["last_seen"] = datetime.fromtimestamp(seen.last_us / _EPOCH_US, UTC)
    return alert
