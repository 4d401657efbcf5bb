"""`cwn bench --suite produce`: what the fan-out's writes cost the Kafka client and the broker.

Routing writes one record per (alert, member) to the member's own single-partition topic, so at
the pipeline's rates each member topic gets a record now and then, and a dispatch batch writes
one or two records to each of dozens or hundreds of partitions. What that costs depends on
how the client packs partitions into produce requests: librdkafka (confluent-kafka, the
pipeline's client) sends one request per partition, aiokafka one request per broker carrying
every partition ready for it.

Each writer runs in a process of its own on the same open-loop schedule, shaped as the
dispatch agent's writes: `bursts_per_s` times a second, a burst of `burst` records (one alert's
deliveries), each to a different topic drawn from `topics` member-shaped topics. Writers:

- `confluent_one_topic`: confluent-kafka writing the same records to one topic, waiting
  `BASELINE_LINGER_MS` so that a request carries a whole burst whatever the machine's load:
  **the baseline**, measured in the same run;
- `confluent`: confluent-kafka over the member-shaped topics, configured as the pipeline's
  producers are (`AsyncProducer.tuning`), one client;
- `confluent_clients`: the same over `CWN_MEMBER_TOPIC_CLIENTS` clients, each writing its own
  share of the topics, as the routing stage writes them;
- `aiokafka`: aiokafka over the same topics, configured alike.

For each writer: the records acknowledged (a refused one is left out of every figure), CPU
per record of its process (every thread: librdkafka's work happens on its own threads) and of
the broker (the local broker's process; null for a cluster elsewhere), produce requests per
record (confluent-kafka's statistics; null for aiokafka), and the time from a burst's start to
each record's acknowledgement. Ratios are against the baseline.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from pipeline.bench.measure import cpu_seconds, percentile
from pipeline.broker import BrokerError, LocalBroker
from pipeline.demo.main import local_broker
from pipeline.demo.run import cleanup_namespace
from pipeline.kafka import ensure_topics, make_producer
from pipeline.producer import AsyncProducer
from pipeline.settings import Settings
from pipeline.topics import TopicSpec

PREFIX = "bench-produce-"
WRITERS = ("confluent_one_topic", "confluent", "confluent_clients", "aiokafka")
#: The baseline's linger. With none, a burst's records leave in as many requests as the broker
#: thread wakes while the burst is being written, which depends on how busy the cores are.
BASELINE_LINGER_MS = 5


@dataclass(frozen=True)
class ProduceLoad:
    """The open-loop schedule every writer follows: about the pipeline's writes at half its load."""

    topics: int = 1152
    burst: int = 41
    bursts_per_s: float = 75.0
    seconds: float = 20.0
    value_bytes: int = 480
    seed: int = 7

    def plan(self) -> list[list[int]]:
        """Each burst's topic indexes: `burst` distinct topics out of `topics`, drawn at random.

        A writer given fewer topics takes each index modulo their number: over one topic,
        every record goes to it."""
        rng = random.Random(self.seed)
        width = min(self.burst, self.topics)
        return [rng.sample(range(self.topics), width) for _ in range(round(self.seconds * self.bursts_per_s))]

    def value(self) -> bytes:
        """A record value about as compressible as an Avro alert (hex text of random bytes)."""
        return random.Random(self.seed).randbytes(self.value_bytes // 2).hex().encode()


@dataclass(frozen=True)
class Sample:
    """What one writer's timed phase measured, as raw totals."""

    records: int
    seconds: float
    client_cpu: float
    broker_cpu: float | None
    requests: int | None
    acks: list[float]


def summarise(sample: Sample) -> dict[str, Any]:
    """Per-record figures of one writer."""
    n = max(1, sample.records)

    def per_record(total: float | None, scale: float, digits: int) -> float | None:
        return None if total is None else round(total / n * scale, digits)

    return {
        "records": sample.records,
        "records_per_s": round(sample.records / sample.seconds, 1),
        "client_cpu_us_per_record": per_record(sample.client_cpu, 1e6, 1),
        "broker_cpu_us_per_record": per_record(sample.broker_cpu, 1e6, 1),
        "produce_requests_per_record": per_record(sample.requests, 1, 3),
        "ack_p50_ms": round(percentile(sample.acks, 50) * 1000, 1),
        "ack_p99_ms": round(percentile(sample.acks, 99) * 1000, 1),
    }


def ratios(writers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each writer's CPU per record against the one-topic baseline's, client and broker."""
    base = writers["confluent_one_topic"]
    out: dict[str, Any] = {}
    for side in ("client", "broker"):
        key = f"{side}_cpu_us_per_record"
        if base[key]:
            out[f"{side}_cpu_vs_one_topic"] = {
                name: None if figures[key] is None else round(figures[key] / base[key], 2)
                for name, figures in writers.items()
                if name != "confluent_one_topic"
            }
    return out


def produce_requests(stats: bytes | str) -> int:
    """Produce requests sent so far, summed over brokers, from a librdkafka statistics document."""
    document = orjson.loads(stats)
    return sum(broker.get("req", {}).get("Produce", 0) for broker in document.get("brokers", {}).values())


def _local_broker_pid(settings: Settings) -> int | None:
    """The broker's process when it is this checkout's local broker, whose CPU can be read."""
    try:
        return LocalBroker.from_settings(settings).pid()
    except BrokerError:
        return None


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _broker_cpu(pid: int | None) -> float | None:
    return None if pid is None else cpu_seconds(pid)


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _on_schedule(deadline: float, wait: Callable[[float], None]) -> None:
    """Wait until `deadline` (perf_counter seconds); a writer behind schedule does not wait."""
    while (left := deadline - time.perf_counter()) > 0:
        wait(left)


def confluent_writer(
    settings: Settings,
    topics: Sequence[str],
    load: ProduceLoad,
    broker: int | None,
    clients: int = 1,
    **overrides: Any,
) -> Sample:
    """confluent-kafka on the schedule, configured as the pipeline's producers are (with
    `overrides` on top), over `clients` producers: the i-th topic is written through producer
    i mod `clients` (the routing stage's round, `AsyncProducer`)."""
    stats: list[list[str]] = [[] for _ in range(clients)]
    config = AsyncProducer.tuning(settings) | overrides | {"statistics.interval.ms": 200}
    producers = [make_producer(settings, **config, stats_cb=own.append) for own in stats]
    value = load.value()
    owner = {topic: producers[i % clients] for i, topic in enumerate(dict.fromkeys(topics))}

    def requests_now() -> int:
        total = 0
        for producer, own in zip(producers, stats, strict=True):
            seen, deadline = len(own), time.monotonic() + 10
            while len(own) == seen:  # the next statistics document counts everything sent so far
                if time.monotonic() > deadline:
                    raise TimeoutError("librdkafka sent no statistics for 10 s")
                producer.poll(0.05)
            total += produce_requests(own[-1])
        return total

    def poll(left: float) -> None:
        for producer in producers:
            producer.poll(0)
        time.sleep(min(left, 0.001))

    for topic, producer in owner.items():  # metadata and producer ids first, outside the timed phase
        producer.produce(topic, value)
    for producer in producers:
        producer.flush(60)
    acks: list[float] = []
    requests, cpu, broker_cpu = requests_now(), _own_cpu(), _broker_cpu(broker)
    start = time.perf_counter()
    for n, burst in enumerate(load.plan()):
        began = time.perf_counter()

        def report(err: Any, _msg: Any, began: float = began) -> None:
            if err is None:  # a refused record is not counted: the suite then reports fewer
                acks.append(time.perf_counter() - began)

        for index in burst:
            topic = topics[index % len(topics)]
            owner[topic].produce(topic, value, on_delivery=report)
        _on_schedule(start + (n + 1) / load.bursts_per_s, poll)
    for producer in producers:
        producer.flush(60)
    seconds = time.perf_counter() - start
    cpu, broker_cpu = _own_cpu() - cpu, _delta(broker_cpu, _broker_cpu(broker))
    return Sample(len(acks), seconds, cpu, broker_cpu, requests_now() - requests, acks)


async def _aiokafka_writer(
    settings: Settings, topics: Sequence[str], load: ProduceLoad, broker: int | None
) -> Sample:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="lz4",
        linger_ms=settings.linger_ms,
        max_batch_size=AsyncProducer.TUNING["batch.size"],
    )
    await producer.start()
    value = load.value()
    try:
        await asyncio.gather(*[await producer.send(topic, value) for topic in set(topics)])
        acks: list[float] = []
        pending: list[asyncio.Future[Any]] = []
        cpu, broker_cpu = _own_cpu(), _broker_cpu(broker)
        start = time.perf_counter()
        for n, burst in enumerate(load.plan()):
            began = time.perf_counter()
            for index in burst:
                future = await producer.send(topics[index % len(topics)], value)
                future.add_done_callback(functools.partial(_acknowledged, acks, began))
                pending.append(future)
            await asyncio.sleep(max(0.0, start + (n + 1) / load.bursts_per_s - time.perf_counter()))
        await asyncio.gather(*pending)
        seconds = time.perf_counter() - start
        cpu, broker_cpu = _own_cpu() - cpu, _delta(broker_cpu, _broker_cpu(broker))
        return Sample(len(acks), seconds, cpu, broker_cpu, None, acks)
    finally:
        await producer.stop()


def _acknowledged(acks: list[float], began: float, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        acks.append(time.perf_counter() - began)


def aiokafka_writer(
    settings: Settings, topics: Sequence[str], load: ProduceLoad, broker: int | None
) -> Sample:
    """aiokafka on the schedule (plaintext connections only, as the aiokafka pass-through)."""
    return asyncio.run(_aiokafka_writer(settings, topics, load, broker))


def _write(
    writer: str, settings: Settings, topics: Sequence[str], load: ProduceLoad, broker: int | None
) -> Sample:
    if writer == "aiokafka":
        return aiokafka_writer(settings, topics, load, broker)
    if writer == "confluent_one_topic":
        return confluent_writer(settings, topics, load, broker, **{"linger.ms": BASELINE_LINGER_MS})
    clients = settings.member_topic_clients if writer == "confluent_clients" else 1
    return confluent_writer(settings, topics, load, broker, clients)


def run_produce_suite(base: Settings, load: ProduceLoad, say: Callable[[str], None]) -> dict[str, Any]:
    """Create the topics, run each writer in a fresh process, and return the suite's JSON object."""
    settings = base.model_copy(update={"namespace": base.namespace or f"{PREFIX}{int(time.time())}"})
    members = [settings.topic(f"bench.produce.member.{i}") for i in range(load.topics)]
    one = settings.topic("bench.produce.one")
    writers: dict[str, dict[str, Any]] = {}
    with local_broker(settings, say):
        broker = _local_broker_pid(settings)
        if settings.namespace.startswith(PREFIX):
            cleanup_namespace(settings, PREFIX)
        ensure_topics(settings, [TopicSpec(name, 1) for name in [*members, one]])
        try:
            # spawn: each writer's CPU is its own process's, with no client state inherited
            with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
                for writer in WRITERS:
                    topics = [one] if writer == "confluent_one_topic" else members
                    say(f"produce: {writer}, {load.burst} records a burst, {load.bursts_per_s:g} bursts/s...")
                    sample = pool.apply(_write, (writer, settings, topics, load, broker))
                    writers[writer] = summarise(sample)
        finally:
            if settings.namespace.startswith(PREFIX):
                cleanup_namespace(settings, PREFIX)
    return {"load": asdict(load), "writers": writers} | ratios(writers)
