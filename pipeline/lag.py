"""Consumer lag, measured from the broker: how far a group's commits trail each partition's end.

A thread asks the broker every `interval` seconds for the group's committed offsets and each
partition's high watermark, and sets `cwn_consumer_lag_records{group,topic,partition}`. It reads
offsets only; it never joins the group, so it cannot disturb the assignment. A partition with
no commit yet counts from its low watermark (everything retained is still to do).

The same measurements tell a worker that holds partitions and does nothing with them
(`Progress`): records waiting and no commit for a long while.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Gauge

from pipeline.kafka import client_config
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def lag(committed: int, low: int, high: int) -> int:
    """Records still to process in one partition."""
    start = committed if committed >= 0 else low
    return max(0, high - max(start, low))


Partition = tuple[str, int]


class Progress:
    """Which of the partitions a worker holds have had records waiting, and no new commit,
    for `limit` seconds or more.

    Fed one measurement at a time: each partition's committed offset and lag. A partition's
    clock starts when records wait on it and restarts whenever its commit moves; it stops
    when it is caught up or no longer held. A lag of one does not count: a transactional
    writer's last commit marker sits after the last record and is never consumed. Two
    measurements more than `gap` seconds apart (the process was suspended, or the broker could
    not be asked) start every clock again, so only time watched counts.
    """

    def __init__(self, limit: float, gap: float) -> None:
        self.limit, self.gap = limit, gap
        self._waiting: dict[Partition, tuple[int, float]] = {}
        self._last: float | None = None

    def observe(
        self, now: float, measured: dict[Partition, tuple[int, int]], held: Iterable[Partition]
    ) -> dict[Partition, float]:
        """Take a measurement ((committed, lag) per partition) at `now`; return each held
        partition that has waited `limit` seconds or more, with how long."""
        if self._last is not None and now - self._last > self.gap:
            self._waiting.clear()
        self._last = now
        waiting = {}
        for key in held:
            if key not in measured:
                continue
            committed, behind = measured[key]
            if behind <= 1:
                continue
            since = self._waiting.get(key)
            waiting[key] = since if since is not None and since[0] == committed else (committed, now)
        self._waiting = waiting
        return {key: now - since for key, (_, since) in waiting.items() if now - since >= self.limit}


class LagMonitor:
    """Keeps `gauge` up to date for `group` over the topics `topics()` names and every topic
    whose name starts with one of `prefixes` (as the cluster lists them at each measurement, so
    a topic made later is measured too), and gives each measurement ((committed offset, lag)
    per partition) to `on_measure` when it is set."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        topics: Callable[[], list[str]],
        gauge: Gauge,
        interval: float = 10.0,
        prefixes: tuple[str, ...] = (),
    ) -> None:
        self._settings = settings
        self._group = group
        self._topics = topics
        self._prefixes = prefixes
        self._gauge = gauge
        self._interval = interval
        self.on_measure: Callable[[dict[Partition, tuple[int, int]]], None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lag-{group}", daemon=True)

    def start(self) -> LagMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        config = client_config(self._settings) | {"group.id": self._group, "enable.auto.commit": False}
        consumer = Consumer(config)
        try:
            while not self._stop.wait(self._interval):
                try:
                    measured = self.measure(consumer)
                except Exception as exc:  # noqa: BLE001 - a broker hiccup skips one measurement
                    log.info("Consumer lag not measured this round: %s", exc)
                    continue
                if self.on_measure is not None:
                    try:
                        self.on_measure(measured)
                    except Exception:  # a fault in what watches the lag must not stop measuring it
                        log.exception("Acting on the consumer lag failed")
        finally:
            consumer.close()

    def measure(self, consumer: Consumer) -> dict[Partition, tuple[int, int]]:
        """(committed offset, lag) of every partition of the topics, and the gauge set."""
        partitions: list[TopicPartition] = []
        metadata = consumer.list_topics(timeout=10)
        named = self._topics()
        found = [t for t in metadata.topics if t.startswith(self._prefixes) and t not in named]
        for topic in [*named, *sorted(found)]:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                continue
            partitions += [TopicPartition(topic, p) for p in described.partitions]
        out: dict[Partition, tuple[int, int]] = {}
        if not partitions:
            return out
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            behind = lag(tp.offset, low, high)
            out[(tp.topic, tp.partition)] = (tp.offset, behind)
            self._gauge.labels(self._group, tp.topic, str(tp.partition)).set(behind)
        return out
