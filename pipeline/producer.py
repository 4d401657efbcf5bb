"""An asyncio face on the confluent-kafka producer, for the agents' outputs.

`send_batch` queues records and returns a future that resolves, once the broker has answered
for every one of them (acks=all, idempotent), to the list of those it refused: empty when all
were written. The client's delivery reports are served by a background thread, and the event
loop is woken once per batch rather than once per record. When the client's queue is full,
`send_batch` waits instead of failing: that is the back-pressure that slows a stage down
rather than losing records.

Agents write through this rather than through Faust's aiokafka producer, whose metadata
tracking narrows to the newest topic it sends to and then stalls writes to older ones; the
pipeline writes to one topic per member, and members are added while it runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.kafka import make_producer
from pipeline.settings import Settings

Headers = list[tuple[str, bytes]]
Record = tuple[str, bytes | None, bytes | None, Headers]


@dataclass(frozen=True, slots=True)
class Refused:
    """A record the broker did not acknowledge: its topic and key, and the client's error."""

    topic: str
    key: bytes | None
    error: KafkaError


class _Acks:
    """Counts a batch's outstanding acknowledgements; resolves its future at zero.

    The count starts at one for the batch itself, so the future cannot resolve while records
    are still being queued; `seal` gives that one back.
    """

    __slots__ = ("_future", "_lock", "_loop", "_pending", "refused")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[list[Refused]] = loop.create_future()
        self._lock = threading.Lock()
        self._pending = 1
        self.refused: list[Refused] = []

    def expect(self) -> None:
        with self._lock:
            self._pending += 1

    def report(self, error: KafkaError | None, message: Message) -> None:
        """Delivery report callback, on the producer's report thread."""
        if error is not None:
            self.refused.append(Refused(message.topic(), message.key(), error))
        self._done()

    def seal(self) -> asyncio.Future[list[Refused]]:
        self._done()
        return self._future

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            finished = self._pending == 0
        if finished:
            self._loop.call_soon_threadsafe(_resolve, self._future, self.refused)


def _resolve(future: asyncio.Future[list[Refused]], refused: list[Refused]) -> None:
    if not future.done():
        future.set_result(refused)


class AsyncProducer:
    """One confluent-kafka producer shared by the agents of a worker."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self._producer = make_producer(
            settings,
            **{"linger.ms": 5, "batch.size": 512 * 1024, "queue.buffering.max.messages": 500_000} | overrides,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve_reports, name="producer-reports", daemon=True)
        self._thread.start()

    def _serve_reports(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send_batch(self, records: Iterable[Record]) -> asyncio.Future[list[Refused]]:
        """Queue records; the returned future resolves to the refused ones once all are answered."""
        acks = _Acks(asyncio.get_running_loop())
        produce = self._producer.produce
        for topic, key, value, headers in records:
            acks.expect()
            while True:
                try:
                    produce(topic, value, key, headers=headers or None, on_delivery=acks.report)
                    break
                except BufferError:
                    await asyncio.sleep(0.005)
        return acks.seal()

    def close(self, timeout: float = 30.0) -> int:
        """Deliver what is queued, then stop; returns how many records were still undelivered."""
        remaining = self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=5)
        return remaining
