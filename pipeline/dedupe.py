"""Fingerprints and the sliding dedup window.

The fingerprint identifies "the same event seen again". It always covers the feed and the RSIT
class and type; which other fields count depends on the type (`FINGERPRINT_FIELDS`, documented
in docs/dedup.md): a scan is the same scan whatever ports it sweeps, an infected host is the
same infection whatever sinkhole it talks to, an exploit attempt is the same attempt whatever
ephemeral source port it came from. Times, ids, severity, confidence and free text never
count, so a sensor re-reporting an event yields the same fingerprint.

The window slides: a sighting within `window` of the previous sighting of the same fingerprint
is a repeat, and it pushes the window on. A repeat is dropped and counted, unless it is more
severe than every sighting before it in the window: then it is forwarded as an update (same
fingerprint, its own id, the window's count, first_seen and last_seen), because a member must
hear that an event it already knows about got worse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import orjson

from pipeline.alert import SEVERITY_RANK, Alert

_EPOCH_US = 1_000_000


_ALL = ("ip", "port", "fqdn", "url")
_NO_SOURCE_PORT = ("ip", "fqdn", "url")

#: RSIT type (or class) -> (identifier?, source parts, destination parts, indicators?, malware?).
#: Anything not listed uses DEFAULT_FIELDS. Documented in docs/dedup.md: change both together.
FINGERPRINT_FIELDS: dict[str, tuple[bool, tuple[str, ...], tuple[str, ...], bool, bool]] = {
    # A scan sweeps ports and is reported per target host: scanner and target identify it.
    "scanner": (True, ("ip",), ("ip",), False, False),
    # Attacks arrive from ephemeral source ports: the target service identifies them.
    "exploit": (True, _NO_SOURCE_PORT, _ALL, True, True),
    "ids-alert": (True, _NO_SOURCE_PORT, _ALL, True, True),
    "brute-force": (True, ("ip",), ("ip", "port", "fqdn"), False, False),
    "dos": (True, ("ip",), ("ip", "port", "fqdn"), False, False),
    "ddos": (True, (), ("ip", "port", "fqdn"), False, False),
    # An infection is the host and its malware, whatever C2 or sinkhole it reaches out to.
    "infected-system": (True, ("ip", "fqdn"), (), False, True),
    # An exposure is a host's service: what scanned it and from where does not matter.
    "vulnerable": (True, ("ip", "port", "fqdn", "url"), (), False, False),
}
DEFAULT_FIELDS = (True, _ALL, _ALL, True, True)


def fingerprint(alert: Alert) -> str:
    """Return the 32-hex-digit fingerprint of an alert (stable across processes and versions)."""
    fields = FINGERPRINT_FIELDS.get(alert["type"]) or FINGERPRINT_FIELDS.get(
        alert["taxonomy"], DEFAULT_FIELDS
    )
    identifier, source_parts, destination_parts, indicators, malware = fields
    source, destination = alert.get("source") or {}, alert.get("destination") or {}
    parts = (
        alert["feed"]["provider"],
        alert["feed"]["name"],
        alert["taxonomy"],
        alert["type"],
        alert.get("identifier") if identifier else None,
        [source.get(k) for k in source_parts],
        [destination.get(k) for k in destination_parts],
        sorted((i["type"], i["value"]) for i in alert.get("indicators", ())) if indicators else [],
        (alert.get("malware") or {}).get("name") if malware else None,
    )
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Seen:
    """What the dedup table keeps per fingerprint.

    `origin` is the (partition, offset) of the record that opened the window and
    `update_origin` that of the latest update: when either record is read again after a crash it
    is forwarded again instead of being taken for its own repeat, so at-least-once processing
    never turns into loss. `max_rank` is the highest severity rank seen in the window (-1 for
    state written before severities were kept: no update is raised against it).
    """

    first_us: int
    last_us: int
    count: int
    origin: tuple[int, int]
    max_rank: int = -1
    update_origin: tuple[int, int] | None = None

    def to_bytes(self) -> bytes:
        update = list(self.update_origin) if self.update_origin else []
        return orjson.dumps([self.first_us, self.last_us, self.count, *self.origin, self.max_rank, *update])

    @staticmethod
    def last_us_of(data: bytes) -> int:
        """`last_us` of stored bytes, without building the whole state (the sweep reads it for
        every entry it looks at)."""
        last_us: int = orjson.loads(data)[1]
        return last_us

    @classmethod
    def from_bytes(cls, data: bytes) -> Seen:
        first, last, count, partition, offset, *rest = orjson.loads(data)
        max_rank = rest[0] if rest else -1
        update = (rest[1], rest[2]) if len(rest) == 3 else None
        return cls(first, last, count, (partition, offset), max_rank, update)


class Verdict(Enum):
    NEW = "new"
    REPLAY = "replay"
    UPDATE = "update"
    DUPLICATE = "duplicate"

    @property
    def forwarded(self) -> bool:
        return self is not Verdict.DUPLICATE


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * _EPOCH_US)


def observe(
    seen: Seen | None, observed_us: int, origin: tuple[int, int], window_us: int, rank: int = -1
) -> tuple[Seen, Verdict]:
    """Decide whether a sighting is new, a replay of a forwarded record, an update (more severe
    than anything before it in the window) or a repeat to drop.

    Returns the state to store and the verdict. A sighting older than the latest one does not
    move the window back. When several updates of one event are in flight at a crash, only the
    latest is forwarded again: it supersedes the others.
    """
    if seen is not None and origin in (seen.origin, seen.update_origin):
        return seen, Verdict.REPLAY
    if seen is None or observed_us - seen.last_us > window_us:
        return Seen(observed_us, observed_us, 1, origin, rank), Verdict.NEW
    worse = 0 <= seen.max_rank < rank
    updated = Seen(
        min(seen.first_us, observed_us),
        max(seen.last_us, observed_us),
        seen.count + 1,
        seen.origin,
        max(seen.max_rank, rank),
        origin if worse else seen.update_origin,
    )
    return updated, Verdict.UPDATE if worse else Verdict.DUPLICATE


def observe_alert(
    stored: bytes | None, alert: Alert, origin: tuple[int, int], window_us: int
) -> tuple[Seen, Verdict]:
    """`observe` for an alert read at `origin` (partition, offset), against the stored window."""
    return observe(
        Seen.from_bytes(stored) if stored else None,
        to_us(alert["time_observation"]),
        origin,
        window_us,
        SEVERITY_RANK[alert["severity"]],
    )


def expired(stored: bytes, now_us: int, window_us: int) -> bool:
    """True when a stored window can be forgotten: its last sighting is more than two windows
    before `now_us`.

    One window of grace, because a sighting is compared by its observation time: a report
    arriving more than a window after the event it repeats could otherwise be taken for new.
    """
    return Seen.last_us_of(stored) < now_us - 2 * window_us


def stamp(alert: Alert, seen: Seen) -> Alert:
    """Write the window's aggregation onto an alert that is about to be forwarded."""
    alert["count"] = seen.count
    alert["first_seen"] = datetime.fromtimestamp(seen.first_us / _EPOCH_US, UTC)
    alert["last_seen"] = datetime.fromtimestamp(seen.last_us / _EPOCH_US, UTC)
    return alert
