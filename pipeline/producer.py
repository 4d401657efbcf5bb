"""An asyncio face on the confluent-kafka producer, for the agents' outputs.

`send_batch` queues records and returns a future that resolves, once the broker has answered
for every one of them (acks=all, idempotent), to the list of those it refused: empty when all
were written. The client's delivery reports are served on the event loop's own thread: a pump
polls the client every millisecond while any batch waits for its answers (every 100 ms when
none does). A report is a Python call per record; made on the loop's thread it costs no
thread switch and no lock, where a reporting thread would take the interpreter's lock from
the agents once per record. When the client's queue is full, `send_batch` waits instead of
failing: that is the back-pressure that slows a stage down rather than losing records.

One `AsyncProducer` may spread its topics over several clients, each topic always on the same
client, so the order of a topic's records is kept. librdkafka sends one produce request per
partition, and the broker serves one request at a time per connection: the routing agent's
writes, a record now and then to each of a thousand single-partition member topics, queue up
behind each other on one connection. Over a few connections the broker serves them side by
side, and each client's thread walks only its own share of the partitions on every wake-up
(`docs/performance.md`, "Member-topic writes over several connections").

The normalise agent writes through this, and so does the routing stage with
`CWN_MEMBER_TOPIC_WRITER=clients`; by default the routing stage writes through an aiokafka
producer in a process of its own (`pipeline.writer_process`), with the same contract
(`BatchWriter`). Neither goes through Faust's aiokafka producer, whose metadata tracking
narrows to the topics it was told of and then stalls writes to others; the pipeline writes
to one topic per member, and members are added while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

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


class BatchWriter(Protocol):
    """What the agents write through: `AsyncProducer`, or `pipeline.writer_process.ProcessProducer`."""

    async def start(self) -> None:
        """Get ready to write, before the first batch (the first batch does it otherwise)."""
        ...

    async def send_batch(self, records: Iterable[Record]) -> asyncio.Future[list[Refused]]:
        """Queue records; the future resolves to the refused ones once the broker answered all."""
        ...

    def close(self, timeout: float = 30.0) -> int:
        """Deliver what is queued, then stop; returns how many records were left undelivered."""
        ...


class _Acks:
    """Counts a batch's outstanding acknowledgements; resolves its future at zero.

    The count starts at one for the batch itself, so the future cannot resolve while records
    are still being queued; `seal` gives that one back. Reports and `seal` run on the event
    loop's thread (see `AsyncProducer`), so the count needs no lock.
    """

    __slots__ = ("_future", "_pending", "refused")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._future: asyncio.Future[list[Refused]] = loop.create_future()
        self._pending = 1
        self.refused: list[Refused] = []

    def expect(self, count: int = 1) -> None:
        self._pending += count

    def report(self, error: KafkaError | None, message: Message) -> None:
        """Delivery report callback, served by `poll` on the event loop's thread."""
        if error is not None:
            self.refused.append(Refused(message.topic(), message.key(), error))
        self._pending -= 1
        if not self._pending:
            _resolve(self._future, self.refused)

    def seal(self) -> asyncio.Future[list[Refused]]:
        self.report(None, None)  # type: ignore[arg-type]
        return self._future

    @property
    def answered(self) -> bool:
        return self._future.done()


def _resolve(future: asyncio.Future[list[Refused]], refused: list[Refused]) -> None:
    if future.done():
        return
    # Its loop may be closed when `close` serves the last reports: nobody is left waiting then.
    with contextlib.suppress(RuntimeError):
        future.set_result(refused)


class AsyncProducer:
    """The confluent-kafka producers of one agent (or runner), with their delivery-report pump.

    `clients` producers share the topics, each written through one of them only: the first
    topic goes to the first client, the next new topic to the next, and so on round, so a
    topic's records keep their order and the topics are spread evenly. A batch's future
    resolves once every client has answered for its records.
    """

    #: Seconds between polls while a batch waits for answers, and while none does.
    BUSY_POLL, IDLE_POLL = 0.001, 0.1
    #: The client settings every agent's producer adds to `make_producer`'s, with the
    #: configured linger (`tuning`).
    TUNING: dict[str, Any] = {
        "batch.size": 512 * 1024,
        "queue.buffering.max.messages": 500_000,
    }

    @classmethod
    def tuning(cls, settings: Settings) -> dict[str, Any]:
        """The agents' producer settings (`cwn bench --suite produce` writes with them too)."""
        return cls.TUNING | {"linger.ms": settings.linger_ms}

    def __init__(self, settings: Settings, clients: int = 1, **overrides: Any) -> None:
        if clients < 1:
            raise ValueError(f"clients: expected at least 1, got {clients}")
        self._clients = [make_producer(settings, **self.tuning(settings) | overrides) for _ in range(clients)]
        self._produce_to: dict[str, Callable[..., None]] = {}
        self._waiting: list[_Acks] = []
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    async def start(self) -> None:
        """Start the delivery-report pump (the first batch does it otherwise)."""
        self._start_pump()

    async def send_batch(self, records: Iterable[Record]) -> asyncio.Future[list[Refused]]:
        """Queue records; the returned future resolves to the refused ones once all are answered."""
        self._start_pump()
        acks = _Acks(asyncio.get_running_loop())
        report, produce_to = acks.report, self._produce_to
        queued = 0
        for topic, key, value, headers in records:
            produce = produce_to.get(topic) or self._assign(topic)
            while True:
                try:
                    produce(topic, value, key, headers=headers or None, on_delivery=report)
                    break
                except BufferError:
                    acks.expect(queued)  # the pump serves reports meanwhile: count them first
                    queued = 0
                    await asyncio.sleep(0.005)
            queued += 1
        acks.expect(queued)
        self._waiting.append(acks)
        assert self._wake is not None
        self._wake.set()  # an idle pump starts polling at once, not after its idle wait
        return acks.seal()

    def _assign(self, topic: str) -> Callable[..., None]:
        """The client a topic is written through from now on: the next one round."""
        produce = self._clients[len(self._produce_to) % len(self._clients)].produce
        self._produce_to[topic] = produce
        return produce

    def _start_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._wake = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._pump = loop.create_task(self._serve_reports(), name="producer-reports")

    async def _serve_reports(self) -> None:
        polls, wake = [client.poll for client in self._clients], self._wake
        assert wake is not None
        while True:
            for poll in polls:
                poll(0)
            if self._waiting:
                self._waiting = [acks for acks in self._waiting if not acks.answered]
            if self._waiting:
                await asyncio.sleep(self.BUSY_POLL)
                continue
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.IDLE_POLL)

    def close(self, timeout: float = 30.0) -> int:
        """Deliver what is queued, then stop; returns how many records were still undelivered.

        The clients flush one after the other within `timeout` in all."""
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        deadline = time.monotonic() + timeout
        return sum(client.flush(max(0.0, deadline - time.monotonic())) for client in self._clients)
