"""One member endpoint's delivery loop: its queue, batches, retries and circuit breaker.

Each member target gets its own `Endpoint`, so one that hangs or fails only ever delays its
own deliveries: it waits on its own timer, its queue fills, and the runner pauses that member's
topic alone. Sends to all endpoints together are bounded by one shared semaphore, and a send
that does not finish within `send_timeout` counts as a retriable failure.

Guarantees: every delivery put into an endpoint is finished exactly once through `on_done`,
either DELIVERED or FAILED (refused above the TLP ceiling, refused by the receiver for good, or
retries exhausted, with the last error), unless the endpoint is closed first; then it is not
finished at all and the runner does not commit its offset, so it is delivered again later
(at least once). Deliveries to one endpoint are sent in the order they were put.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.breaker import CircuitBreaker
from connectors.core import Connector, Delivery, Outcome, Result, refuse_above_ceiling
from connectors.retry import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Pending:
    """A delivery on its way, with what the runner needs to commit it and write its receipt."""

    delivery: Delivery
    token: Any = None
    read_at: float = field(default_factory=time.monotonic)
    attempts: int = 0
    first_attempt: float | None = None
    last_error: str = ""
    finished: bool = False


OnDone = Callable[["Endpoint", Pending, Result], None]


@dataclass(frozen=True, slots=True)
class Limits:
    """How one endpoint batches and how long it waits."""

    batch_size: int = 100
    linger: float = 0.2
    send_timeout: float = 10.0


class Endpoint:
    """Delivers to one target of one member through its connector."""

    def __init__(
        self,
        member_id: str,
        target_id: str,
        connector: Connector,
        *,
        ceiling: str,
        public: bool = False,
        limits: Limits | None = None,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        in_flight: asyncio.Semaphore | None = None,
        on_done: OnDone,
        on_attempt: Callable[[Outcome], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.member_id = member_id
        self.target_id = target_id
        self.connector = connector
        self.breaker = breaker or CircuitBreaker()
        self._ceiling = ceiling
        self._public = public
        self._limits = limits or Limits()
        self._policy = policy or RetryPolicy()
        self._in_flight = in_flight or asyncio.Semaphore(1)
        self._on_done = on_done
        self._on_attempt = on_attempt
        self._rng = rng or random.Random()
        self._queue: deque[Pending] = deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._current: list[Pending] = []
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Deliveries put and not yet finished."""
        return len(self._queue) + sum(not p.finished for p in self._current)

    def put(self, pending: Pending) -> None:
        self._queue.append(pending)
        self._arrived.set()

    def start(self) -> Endpoint:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"endpoint {self.member_id}/{self.target_id}"
        )
        return self

    def unfinished(self) -> list[Pending]:
        """What was put and not finished: the batch under way (which may yet have arrived), then
        the queue, in order."""
        return [p for p in self._current if not p.finished] + list(self._queue)

    async def close(self) -> None:
        """Stop after the send under way; what is still queued is left unfinished."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.connector.close()

    async def _run(self) -> None:
        try:
            await self.connector.open()
        except Exception:
            log.exception("Opening connector %s for %s failed", self.connector.name, self.member_id)
        while not self._closing:
            batch = await self._take()
            if batch:
                self._current = batch
                try:
                    await self._deliver(batch)
                finally:
                    self._current = []

    async def _take(self) -> list[Pending]:
        while not self._queue and not self._closing:
            self._arrived.clear()
            await self._arrived.wait()
        if len(self._queue) < self._limits.batch_size and self._limits.linger > 0:
            await asyncio.sleep(self._limits.linger)
        size = min(self._limits.batch_size, len(self._queue))
        return [self._queue.popleft() for _ in range(size)]

    async def _deliver(self, batch: list[Pending]) -> None:
        todo: list[Pending] = []
        for pending in batch:
            refused = refuse_above_ceiling(pending.delivery, self._ceiling, self._public)
            if refused is None:
                todo.append(pending)
            else:
                self._finish(pending, refused)
        while todo:
            wait = self.breaker.wait()
            if wait:
                await asyncio.sleep(wait)
            results = await self._send(todo)
            retry: list[Pending] = []
            waits: list[float] = []
            for pending, result in zip(todo, results, strict=True):
                if result.outcome is Outcome.RETRY:
                    pending.last_error = result.detail
                    retry.append(pending)
                    if result.retry_after is not None:
                        waits.append(result.retry_after)
                else:
                    self._finish(pending, result)
            if not retry:
                return
            started = min(p.first_attempt or 0.0 for p in retry)
            delay = self._policy.next_delay(
                max(p.attempts for p in retry),
                time.monotonic() - started,
                max(waits) if waits else None,
                self._rng,
            )
            if delay is None:
                for pending in retry:
                    self._finish(
                        pending,
                        Result(
                            Outcome.FAILED,
                            f"gave up after {pending.attempts} attempt(s): {pending.last_error}",
                        ),
                    )
                return
            todo = retry
            await asyncio.sleep(delay)

    async def _send(self, todo: list[Pending]) -> list[Result]:
        now = time.monotonic()
        for pending in todo:
            pending.attempts += 1
            if pending.first_attempt is None:
                pending.first_attempt = now
        deliveries: list[Delivery] = [p.delivery for p in todo]
        async with self._in_flight:
            try:
                results = await asyncio.wait_for(
                    self.connector.send_batch(deliveries), self._limits.send_timeout
                )
            except TimeoutError:
                results = [Result(Outcome.RETRY, f"no answer within {self._limits.send_timeout:g}s")] * len(
                    todo
                )
            except Exception as exc:
                log.exception("Connector %s raised instead of returning results", self.connector.name)
                results = [Result(Outcome.RETRY, f"connector error: {type(exc).__name__}")] * len(todo)
        if len(results) != len(todo):
            results = [Result(Outcome.RETRY, "connector returned the wrong number of results")] * len(todo)
        # The endpoint is healthy when it answered, even with a refusal; only sends that
        # could not get an answer count against its circuit.
        self.breaker.record(any(r.outcome is not Outcome.RETRY for r in results))
        if self._on_attempt is not None:
            for result in results:
                self._on_attempt(result.outcome)
        return results

    def _finish(self, pending: Pending, result: Result) -> None:
        pending.finished = True
        try:
            self._on_done(self, pending, result)
        except Exception:
            log.exception("Recording the outcome of delivery %s failed", pending.delivery.key)
