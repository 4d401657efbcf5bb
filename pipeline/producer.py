"""An asyncio face on the confluent-kafka producer, for the agents' outputs.

`send` queues a record and returns a future that resolves when the broker has acknowledged it
(acks=all, idempotent) or fails with the delivery error. A background thread serves the
client's delivery reports. When the client's queue is full, `send` waits instead of failing:
that is the back-pressure that slows a stage down rather than losing records.

Agents write through this rather than through Faust's aiokafka producer, whose metadata
tracking narrows to the newest topic it sends to and then stalls writes to older ones; the
pipeline writes to one topic per member, and members are added while it runs.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from pipeline.kafka import make_producer
from pipeline.settings import Settings


class AsyncProducer:
    """One confluent-kafka producer shared by the agents of a worker."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self._producer = make_producer(
            settings,
            **{"linger.ms": 5, "batch.size": 512 * 1024, "queue.buffering.max.messages": 200_000} | overrides,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve_reports, name="producer-reports", daemon=True)
        self._thread.start()

    def _serve_reports(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> asyncio.Future[Message]:
        """Queue one record; the returned future completes with its acknowledgement."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

        def report(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, error, message)

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers or None, on_delivery=report
                )
                return future
            except BufferError:
                await asyncio.sleep(0.005)

    def close(self, timeout: float = 30.0) -> int:
        """Deliver what is queued, then stop; returns how many records were still undelivered."""
        remaining = self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=5)
        return remaining


def _settle(future: asyncio.Future[Message], error: KafkaError | None, message: Message) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(KafkaException(error))
    else:
        future.set_result(message)
