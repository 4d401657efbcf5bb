"""Member-topic writes from a process of their own, through aiokafka.

librdkafka (confluent-kafka) sends one produce request per partition. The routing stage writes
a record now and then to each of a thousand single-partition member topics, so nearly every
delivery is a request of its own, and the broker and the client pay a request's cost for each
(`docs/performance.md`, "Where the time goes now"). aiokafka packs every partition ready for a
broker into one request, which the broker serves at about the cost of one topic; but aiokafka
is pure Python, and on the worker's event loop its work competes with the agents'. Run in a
child process, it has a core to itself.

`ProcessProducer` keeps `pipeline.producer.AsyncProducer`'s contract: `send_batch(records)`
returns a future that resolves, once the broker has answered for every record (acks=all,
idempotent), to the list of those it refused; `close(timeout)` delivers what is queued and
returns how many records were left unanswered. Each topic's records keep their order: the child
sends them in the order received, and aiokafka has at most one request in flight per broker.

If the child ends (a crash, an out-of-memory kill), every batch it has not answered resolves
with all its records refused, and so does every batch sent after: the agent then ends the
worker without committing them, and its restart reads them again (at least once). The child
writes its log to the worker's stderr.

On the pipe, each frame is a 4-byte big-endian length and a pickle: first the connection
settings and the prefixes of the topics to learn at start, then (batch number, records) from
the worker, and (batch number, refusals) back.
Pickle suits a private pipe between two processes of this package, and keeps a value shared by
many records (an alert's view, the same for every member it does not name) once per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from confluent_kafka import KafkaError

from pipeline.producer import AsyncProducer, Record, Refused
from pipeline.settings import Settings

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
#: Largest frame either side accepts: a batch of 500 alerts fans out to about 20,000 records.
MAX_FRAME = 256 * 1024 * 1024


def frame(obj: Any) -> bytes:
    """One frame: the pickle of `obj` behind its length."""
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > MAX_FRAME:
        raise ValueError(f"frame of {len(body)} bytes is over the {MAX_FRAME}-byte limit")
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's object; `asyncio.IncompleteReadError` at the end of the stream."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes is over the {MAX_FRAME}-byte limit")
    return pickle.loads(await reader.readexactly(length))


@dataclass(frozen=True, slots=True)
class Connection:
    """What the child needs to reach the cluster: `Settings`' connection part, picklable."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_ca_file: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> Connection:
        return cls(
            bootstrap=settings.bootstrap,
            security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism,
            sasl_username=settings.sasl_username,
            sasl_password=settings.sasl_password.get_secret_value(),
            ssl_ca_file=str(settings.ssl_ca_file) if settings.ssl_ca_file else None,
        )

    def aiokafka(self) -> dict[str, Any]:
        """aiokafka client arguments for this connection, TLS and SASL included."""
        import ssl

        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.endswith("SSL"):
            config["ssl_context"] = ssl.create_default_context(cafile=self.ssl_ca_file)
        if self.security_protocol.startswith("SASL"):
            config |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        return config


class ProcessProducer:
    """Writes batches of records through an aiokafka producer in a child process.

    The child starts with the first batch (or `start`), from the running event loop.
    """

    def __init__(self, settings: Settings, warm: Sequence[str] = ()) -> None:
        """`warm`: prefixes of the topics the child learns at start, before any batch comes."""
        self._connection = Connection.of(settings)
        self._warm = tuple(warm)
        self._linger_ms = settings.linger_ms
        self._child: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[list[Refused]], list[Record]]] = {}
        self._batches = 0
        self._ended: str | None = None
        self._started: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs; None before it starts and once it has ended."""
        child = self._child
        # poll() reaps an ended child, so a later process given the same id is never read.
        return child.pid if child is not None and child.poll() is None else None

    async def start(self) -> None:
        """Start the child and connect its pipes to the running loop (once; callers that come
        while it starts wait for it)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_task(self._start(), name="writer-process-start")
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", "pipeline.writer_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._child = child
        assert child.stdin is not None and child.stdout is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), child.stdout)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, child.stdin)
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)
        self._writer.write(frame((self._connection, self._warm, self._linger_ms)))
        self._reader_task = loop.create_task(self._read_answers(reader), name="writer-process-answers")
        log.info("Member-topic writer process started (pid %d)", child.pid)

    async def send_batch(self, records: Iterable[Record]) -> asyncio.Future[list[Refused]]:
        """Hand records to the child; the future resolves to the refused ones once all are answered."""
        await self.start()
        batch = list(records)
        future: asyncio.Future[list[Refused]] = asyncio.get_running_loop().create_future()
        if self._ended is not None:
            future.set_result(_refuse_all(batch, self._ended))
            return future
        number = self._batches
        self._batches += 1
        self._pending[number] = (future, batch)
        assert self._writer is not None
        try:
            self._writer.write(frame((number, batch)))
            await self._writer.drain()  # back-pressure: the child reads as fast as it can send
        except (ConnectionError, RuntimeError) as exc:
            self._end(f"writer process unreachable: {exc!r}")
        return future

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                number, refusals = await read_frame(reader)
                future, _ = self._pending.pop(number)
                if not future.done():
                    future.set_result([_refused(*refusal) for refusal in refusals])
        except asyncio.IncompleteReadError:
            self._end(f"writer process ended (exit code {await self._exit_code()})")
        except Exception as exc:  # noqa: BLE001 - any fault in the answers ends the writer
            self._end(f"writer process answer unreadable: {exc!r}")

    async def _exit_code(self) -> int | None:
        """The child's exit code, given a second to be reaped once its pipe has closed."""
        assert self._child is not None
        for _ in range(20):
            code = self._child.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        return None

    def _end(self, reason: str) -> None:
        """No more answers will come: refuse every batch still waiting, and every later one."""
        if self._ended is None:
            log.error("%s; %d batches unanswered", reason, len(self._pending))
            self._ended = reason
        pending, self._pending = self._pending, {}
        for future, batch in pending.values():
            if not future.done():
                future.set_result(_refuse_all(batch, reason))

    def close(self, timeout: float = 30.0) -> int:
        """Let the child deliver what it holds and stop; returns the records left unanswered.

        Closing its input tells the child to flush and exit; it is killed after `timeout`."""
        child = self._child
        if child is None:
            return 0
        if self._reader_task is not None and not self._reader_task.done():
            self._reader_task.cancel()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(OSError):
            assert child.stdin is not None
            child.stdin.close()
        deadline = time.monotonic() + timeout
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        unanswered = sum(len(batch) for future, batch in self._pending.values() if not future.done())
        if child.returncode != 0:
            log.warning("Member-topic writer process exited with code %s", child.returncode)
            return unanswered
        return 0


def _refused(topic: str, key: bytes | None, reason: str, retriable: bool) -> Refused:
    return Refused(topic, key, KafkaError(KafkaError._FAIL, reason, retriable=retriable))


def _refuse_all(batch: list[Record], reason: str) -> list[Refused]:
    error = KafkaError(KafkaError._TRANSPORT, reason, retriable=True)
    return [Refused(topic, key, error) for topic, key, _, _ in batch]


# The child.


class ChildSender:
    """The child's side: sends each batch through aiokafka and answers once all are acknowledged."""

    def __init__(self, producer: Any, answer: IO[bytes]) -> None:
        self._producer = producer
        self._answer = answer
        self._single: dict[str, bool] = {}
        self._tracked: set[str] = set()
        self._answering: set[asyncio.Task[None]] = set()

    async def send(self, number: int, records: list[Record]) -> None:
        """Queue a batch's records, in order; its answer is written once all are answered."""
        single = self._single
        new = {topic for topic, _, _, _ in records if topic not in single}
        if new:
            await self._track(new)
        sends: list[tuple[str, bytes | None, Any]] = []
        for topic, key, value, headers in records:
            try:
                sent = await self._send(topic, key, value, headers)
            except Exception as exc:  # noqa: BLE001 - not sent (unknown topic, too large): refused
                sent = asyncio.get_running_loop().create_future()
                sent.set_exception(exc)
            sends.append((topic, key, sent))
        task = asyncio.get_running_loop().create_task(self._answer_when_done(number, sends))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def warm(self, prefixes: Sequence[str]) -> None:
        """Learn now the topics whose names begin with one of `prefixes`."""
        topics = {t for t in self._producer.client.cluster.topics() if t.startswith(tuple(prefixes))}
        if topics:
            await self._track(topics)

    async def _track(self, topics: set[str]) -> None:
        """Add topics to those aiokafka asks the metadata of, and learn their partitions.

        Until aiokafka is told of a topic it asks for every topic's metadata; from then on, only
        for the topics it was told of. A topic written only because the first answer named it
        would drop out of the metadata, and its waiting batches would wait for a leader no
        answer names. Told one by one, the thousand topics of a first batch would cost a
        metadata request each, in turn; told together, one.
        """
        self._tracked |= topics
        await self._producer.client.set_topics(sorted(self._tracked))
        cluster = self._producer.client.cluster
        for topic in topics:
            partitions = cluster.partitions_for_topic(topic)
            # A topic not there yet is left to `send`, which waits for it and then refuses.
            self._single[topic] = partitions is not None and len(partitions) == 1

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        # A member topic has one partition: naming it spares aiokafka's pure-Python murmur2.
        # A topic given more partitions later keeps being written to its first, in order.
        partition = 0 if self._single[topic] else None
        return await self._producer.send(topic, value, key=key, headers=headers or None, partition=partition)

    async def _answer_when_done(self, number: int, sends: list[tuple[str, bytes | None, Any]]) -> None:
        refusals = []
        for topic, key, sent in sends:
            try:
                await sent
            except Exception as exc:  # noqa: BLE001 - each refusal is reported to the worker
                refusals.append((topic, key, repr(exc), bool(getattr(exc, "retriable", False))))
        self._answer.write(frame((number, refusals)))
        self._answer.flush()

    async def drain(self) -> None:
        while self._answering:
            await asyncio.gather(*self._answering)


async def serve(requests: IO[bytes], answer: IO[bytes]) -> None:
    """Read the connection, the topics to learn and the linger, then batches, until the worker
    closes the pipe; flush and stop."""
    from aiokafka import AIOKafkaProducer

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), requests)
    connection, warm, linger_ms = await read_frame(reader)
    producer = AIOKafkaProducer(
        **connection.aiokafka(),
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=AsyncProducer.TUNING["batch.size"],
        # Member-topic batches hold a record or two: compressing them costs more than it saves.
        compression_type=None,
    )
    await producer.start()
    writer = ChildSender(producer, answer)
    try:
        # The first metadata answer names every topic: learn those the worker will write now,
        # so the first batch does not wait for them.
        await writer.warm(warm)
        while True:
            try:
                number, records = await read_frame(reader)
            except asyncio.IncompleteReadError:
                break
            await writer.send(number, records)
        await producer.flush()
        await writer.drain()
    finally:
        await producer.stop()


def main() -> None:
    """The child's entry point: answers go to the original stdout, anything else printed to stderr."""
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # The worker decides when this process ends, by closing its input (its own end included):
    # a Ctrl-C or SIGTERM to the process group must not drop batches the worker still waits on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="writer-process %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(sys.stdin.buffer, answer))


if __name__ == "__main__":
    main()
