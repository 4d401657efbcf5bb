"""When to try a delivery again: one policy for every connector.

Exponential backoff with full jitter (a uniform wait between zero and the exponential step, so
many endpoints failing together do not retry in lockstep), bounded by a number of attempts and
a total time. A receiver's own `Retry-After` is honoured: the wait is at least that long, and
a receiver that asks for more time than the policy has left is given up on at once rather than
hammered early.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Limits on retrying one delivery.

    `max_attempts` counts every send, the first included; `max_elapsed_seconds` is measured
    from the first send. Whichever runs out first ends the retries.
    """

    base_seconds: float = 0.5
    cap_seconds: float = 60.0
    max_attempts: int = 8
    max_elapsed_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("retry: need 0 < base_seconds <= cap_seconds")
        if self.max_attempts < 1 or self.max_elapsed_seconds <= 0:
            raise ValueError("retry: max_attempts must be >= 1 and max_elapsed_seconds > 0")

    def next_delay(
        self,
        attempts: int,
        elapsed: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt after `attempts` sends, or None to give up."""
        if attempts >= self.max_attempts:
            return None
        step = min(self.cap_seconds, self.base_seconds * 2 ** (attempts - 1))
        delay = (rng or random).uniform(0, step)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if elapsed + delay > self.max_elapsed_seconds:
            return None
        return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
