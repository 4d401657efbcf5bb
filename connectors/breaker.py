"""A circuit breaker per member endpoint, with probation.

Closed: sends go through. After `threshold` failed sends in a row the circuit opens: nothing is
sent to that endpoint for `cooldown`, so a dead endpoint costs nothing and its deliveries wait
(they are neither dropped nor counted as attempts). Then it is on probation (half-open): one
send is let through; success closes the circuit, failure opens it again for twice as long, up
to `max_cooldown`. Only sends are counted: time spent open does not use up a delivery's
attempts, only its total time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class State(Enum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """The state of one endpoint; `clock` is injectable for tests."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 5.0,
        max_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cooldown <= 0 or max_cooldown < cooldown:
            raise ValueError("breaker: need threshold >= 1 and 0 < cooldown <= max_cooldown")
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = State.CLOSED
        self.opened = 0

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self._cooldown:
            self._state = State.HALF_OPEN
        return self._state

    def wait(self) -> float:
        """Seconds until a send may be tried: 0 when closed or on probation."""
        if self.state is State.OPEN:
            return max(0.0, self._cooldown - (self._clock() - self._opened_at))
        return 0.0

    def record(self, success: bool) -> None:
        """Record the result of one send to the endpoint."""
        state = self.state
        if success:
            self._failures = 0
            self._cooldown = self._base_cooldown
            self._state = State.CLOSED
            return
        self._failures += 1
        if state is State.HALF_OPEN:
            self._cooldown = min(self._max_cooldown, self._cooldown * 2)
            self._open()
        elif self._failures >= self._threshold:
            self._open()

    def _open(self) -> None:
        self._state = State.OPEN
        self._opened_at = self._clock()
        self.opened += 1
