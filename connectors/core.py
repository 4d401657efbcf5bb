"""The one connector contract, and what a delivery is.

A connector is opened once, sent batches, asked for its health and closed. `send_batch`
returns one result per delivery, in order, and never raises for a single bad delivery: it says
whether that delivery succeeded, may be retried, or failed for good. Retry, backoff and
dead-lettering are the caller's, in one place, not each connector's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, Protocol

from pipeline.routing.tlp import within_ceiling


class Delivery(NamedTuple):
    """One alert for one member; `key` is the idempotency key the member can deduplicate on.

    A named tuple: the router makes one per (alert, member), about fifty per alert, and a tuple
    is the cheapest immutable record to make.
    """

    member_id: str
    rule: str
    alert: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.alert['id']}:{self.member_id}"


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one delivery. `retry_after` is the receiver's own wait, when it said one
    (an HTTP `Retry-After`); the retry module waits at least that long."""

    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None


DELIVERED = Result(Outcome.DELIVERED)


def all_results(batch: Sequence[Delivery], result: Result) -> list[Result]:
    """The same result for every delivery of a batch that succeeded or failed as one."""
    return [result] * len(batch)


class Connector(Protocol):
    """What every delivery connector provides."""

    name: str
    #: Highest TLP label this connector may carry; anything above is refused before sending.
    tlp_ceiling: str

    async def open(self) -> None: ...

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]: ...

    async def close(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


def refuse_above_ceiling(delivery: Delivery, ceiling: str, public: bool = False) -> Result | None:
    """The TLP check made again before any send: a FAILED result, or None when it may go.

    A target whose ceiling is below the alert's label is refused, and so is a `public` target
    for anything but CLEAR (TLP 2.0: GREEN stays within the community).
    """
    tlp = delivery.alert["tlp"]
    if not within_ceiling(tlp, ceiling):
        return Result(Outcome.FAILED, f"tlp {tlp} above the target's ceiling {ceiling}")
    if public and tlp != "CLEAR":
        return Result(Outcome.FAILED, f"tlp {tlp} may not go to a public target")
    return None
