"""Runs the whole pipeline on a broker and accounts for every record.

The demo (and the integration tests, which use the same pieces) start real worker processes,
produce the sample feed into `cwn.alerts.raw`, and count what came out where: records on each
topic (from the broker), duplicates and routed deliveries (from the workers' /metrics), and the
deliveries the directory calls for (by routing the enriched stream again, offline). `lost` is
whatever those counts cannot account for; it must be 0.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from pipeline.demo.feed import FeedRecord
from pipeline.directory import Directory
from pipeline.kafka import (
    count_committed,
    count_records,
    delete_topics,
    list_topics,
    make_producer,
    read_topics,
)
from pipeline.routing import RoutingIndex, route
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, ENRICHED, NORMALISED, RAW, member_topic_prefix, partner_topics_prefix


class Worker:
    """One pipeline worker as a child process (`cwn worker`), with its own state and /metrics."""

    def __init__(self, settings: Settings, name: str, metrics_port: int, log_dir: Path) -> None:
        self.settings = settings.model_copy(
            update={"data_dir": settings.state_dir / "workers" / f"{settings.namespace}-{name}",
                    "metrics_port": metrics_port, "instance": f"{settings.instance}-{name}"}
        )  # fmt: skip
        self.name = name
        self.log_path = log_dir / f"worker-{settings.namespace}-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.metrics_port}/metrics"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CWN_") and k != "KAFKA_BOOTSTRAP"}
        for field, value in self.settings.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"CWN_{field.upper()}"] = str(value)
        return env

    def start(self) -> Worker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return self

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Wait until /metrics answers (the worker has started its app)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited early; see {self.log_path}")
            try:
                self.scrape()
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"worker {self.name} did not serve /metrics; see {self.log_path}")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the worker reports ready: partitions assigned, tables recovered, directory read."""
        self.wait_serving(timeout)
        deadline = time.monotonic() + timeout
        while self.scrape().get("cwn_worker_ready") != 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.name} did not become ready; see {self.log_path}")
            time.sleep(0.3)

    def scrape(self) -> dict[str, float]:
        """Current metric samples, keyed `name{label="value",...}` as Prometheus prints them."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def dump(self, settle: float = 1.0) -> None:
        """Have a running worker log every thread's stack (SIGUSR1) and, at least once, where
        each asyncio task waits and its consumer's partition states (SIGUSR2): the first look at
        a worker that stopped making progress."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            self.process.send_signal(sig)
        time.sleep(settle)


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive free loopback ports, below the ephemeral range.

    A port the kernel hands out for port 0 comes from the range it also gives to outgoing
    connections, so any client could take it before the server binds it; a random port below
    that range is only ever taken by another server.
    """
    for _ in range(200):
        port = random.randrange(10_000, 32_000 - count)
        try:
            for offset in range(count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports on loopback")


def free_port() -> int:
    return free_ports(1)


@contextlib.contextmanager
def running_workers(
    settings: Settings, count: int, prefix: str, keep: bool = False
) -> Iterator[list[Worker]]:
    """Start `count` workers and wait until each is ready; on exit stop them and, unless
    `keep`, remove their local state."""
    workers = [
        Worker(settings, f"{prefix}{n}", free_port(), settings.state_dir / "logs").start()
        for n in range(count)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()
            if not keep:
                remove_state(worker)


def produce_feed(settings: Settings, records: Sequence[FeedRecord], topic: str = "") -> int:
    """Produce records to the raw topic (or `topic`); returns how many the broker acknowledged."""
    producer = make_producer(settings, **{"message.max.bytes": 2 * 1024 * 1024})
    topic = topic or settings.topic(RAW)
    acked = failed = 0

    def report(error: Any, _message: Any) -> None:
        nonlocal acked, failed
        if error is None:
            acked += 1
        else:
            failed += 1

    for record in records:
        while True:
            try:
                producer.produce(topic, value=record.value, headers=list(record.headers), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    while producer.flush(1.0):
        pass
    if failed:
        raise RuntimeError(f"{failed} raw records were not acknowledged by the broker")
    return acked


@dataclass
class Counts:
    """What the pipeline did with the records of one run."""

    ingested: int = 0
    accepted: int = 0
    skipped: int = 0
    rejected: int = 0
    normalised: int = 0
    deadlettered: int = 0
    deadletters_written: int = 0
    duplicates: int = 0
    updates: int = 0
    unique: int = 0
    enriched: int = 0
    route_read: int = 0
    routed: int = 0
    deliveries: int = 0
    expected_deliveries: int = 0

    @property
    def lost(self) -> int:
        """Records the counts cannot account for (see Guarantees in the design).

        A raw record is accepted (it gave alerts), skipped (nothing in it to alert on) or
        rejected; every alert is a first sighting, an update or a dropped repeat; every dead letter
        counted was written.
        """
        return (
            max(0, self.ingested - self.accepted - self.skipped - self.rejected)
            + max(0, self.deadletters_written - self.deadlettered)
            + max(0, self.normalised - self.unique - self.updates - self.duplicates)
            + max(0, self.unique - self.enriched)
            + max(0, self.expected_deliveries - self.deliveries)
        )

    def settled(self) -> bool:
        return (
            self.ingested == self.accepted + self.skipped + self.rejected
            and self.deadlettered == self.deadletters_written
            and self.normalised == self.unique + self.updates + self.duplicates
            and self.enriched == self.unique + self.updates
            and self.route_read == self.enriched
            and self.routed == self.deliveries
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self) | {"lost": self.lost}


def member_topics(settings: Settings) -> list[str]:
    return list_topics(settings, member_topic_prefix(settings))


def _sum_of(samples: dict[str, float], name: str) -> int:
    """The sum of a metric over all its label values."""
    return int(sum(value for key, value in samples.items() if key.startswith(name + "{")))


def summed_metrics(workers: Sequence[Worker]) -> dict[str, float]:
    """Every worker's current samples, added up by name and labels."""
    metrics: dict[str, float] = {}
    for worker in workers:
        for key, value in worker.scrape().items():
            metrics[key] = metrics.get(key, 0) + value
    return metrics


def snapshot(settings: Settings, workers: Sequence[Worker], topics: list[str]) -> Counts:
    """Counts from the broker's offsets and the workers' metrics (cheap; polled while running)."""
    names = {k: settings.topic(k) for k in (RAW, NORMALISED, DEADLETTER, ENRICHED)}
    partners = list_topics(settings, partner_topics_prefix(settings))
    # Under exactly-once, offsets also hold commit markers: count what readers see instead.
    exact = settings.processing_guarantee == "exactly_once"
    counts = (count_committed if exact else count_records)(settings, [*names.values(), *partners, *topics])
    metrics = summed_metrics(workers)
    return Counts(
        ingested=counts[names[RAW]] + sum(counts[t] for t in partners),
        normalised=counts[names[NORMALISED]],
        deadlettered=counts[names[DEADLETTER]],
        accepted=int(metrics.get('cwn_raw_records_total{outcome="accepted"}', 0)),
        skipped=int(metrics.get('cwn_raw_records_total{outcome="skipped"}', 0)),
        rejected=int(metrics.get('cwn_raw_records_total{outcome="rejected"}', 0)),
        deadletters_written=_sum_of(metrics, "cwn_deadlettered_total"),
        duplicates=int(metrics.get("cwn_duplicates_total", 0)),
        updates=(updates := int(metrics.get("cwn_updates_total", 0))),
        unique=counts[names[ENRICHED]] - updates,  # each first sighting and update is written once
        enriched=counts[names[ENRICHED]],
        route_read=int(metrics.get('cwn_records_in_total{stage="route"}', 0)),
        routed=int(metrics.get('cwn_records_out_total{stage="route"}', 0)),
        deliveries=sum(counts[t] for t in topics),
    )


def expected_deliveries(settings: Settings, directory: Directory) -> int:
    """Route the enriched stream again, offline, with the same directory: what members are owed."""
    index = RoutingIndex(directory)
    codec = alert_codec()
    messages = read_topics(settings, [settings.topic(ENRICHED)])
    return sum(len(route(codec.decode(m.value()), index)) for m in messages)


def wait_settled(
    settings: Settings,
    workers: Sequence[Worker],
    directory: Directory,
    expected_ingested: int,
    timeout: float = 300.0,
    on_progress: Callable[[Counts], None] | None = None,
) -> Counts:
    """Poll until every stage has caught up (stable twice in a row) or the timeout passes."""
    topics = member_topics(settings)
    deadline = time.monotonic() + timeout
    exact = settings.processing_guarantee == "exactly_once"
    if exact:
        # Counting committed records means reading them all: wait on the workers' counters
        # first. They count committed batches only, so once they stand still the committed
        # records are final and one count that adds up is enough.
        _wait_counters_quiet(workers, expected_ingested, deadline)
    previous = None
    while True:
        counts = snapshot(settings, workers, topics)
        if on_progress:
            on_progress(counts)
        done = counts.ingested >= expected_ingested and counts.settled()
        if done and (exact or counts == previous):
            break
        if time.monotonic() > deadline:
            break
        previous = counts if done else None
        time.sleep(0.5)
    counts.expected_deliveries = expected_deliveries(settings, directory)
    return counts


def _wait_counters_quiet(workers: Sequence[Worker], expected_ingested: int, deadline: float) -> None:
    """Until the workers have read `expected_ingested` raw records, dispatched every alert they
    normalised, and their counters stand still for a poll (they count committed batches only)."""
    previous = None
    while time.monotonic() < deadline:
        metrics = summed_metrics(workers)
        now = (
            metrics.get('cwn_records_in_total{stage="normalise"}', 0),
            metrics.get('cwn_records_out_total{stage="normalise"}', 0),
            metrics.get('cwn_records_in_total{stage="dedupe"}', 0),
        )
        if now[0] >= expected_ingested and now[1] == now[2] and now == previous:
            return
        previous = now
        time.sleep(0.5)


def cleanup_namespace(settings: Settings, prefix: str) -> None:
    """Delete every topic of namespaces starting with `prefix` (old demo runs)."""
    delete_topics(settings, [t for t in list_topics(settings) if t.startswith(prefix)])


def remove_state(worker: Worker) -> None:
    shutil.rmtree(worker.settings.data_dir, ignore_errors=True)
