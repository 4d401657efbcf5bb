"""Consumer lag, measured from the broker: how far a group's commits trail each partition's end.

A thread asks the broker every `interval` seconds for the group's committed offsets and each
partition's high watermark, and sets `cwn_consumer_lag_records{group,topic,partition}`. It reads
offsets only; it never joins the group, so it cannot disturb the assignment. A partition with
no commit yet counts from its low watermark (everything retained is still to do).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Gauge

from pipeline.kafka import client_config
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def lag(committed: int, low: int, high: int) -> int:
    """Records still to process in one partition."""
    start = committed if committed >= 0 else low
    return max(0, high - max(start, low))


class LagMonitor:
    """Keeps `gauge` up to date for `group` over the topics `topics()` names."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        topics: Callable[[], list[str]],
        gauge: Gauge,
        interval: float = 10.0,
    ) -> None:
        self._settings = settings
        self._group = group
        self._topics = topics
        self._gauge = gauge
        self._interval = interval
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
                    self.measure(consumer)
                except Exception as exc:  # noqa: BLE001 - a broker hiccup skips one measurement
                    log.info("Consumer lag not measured this round: %s", exc)
        finally:
            consumer.close()

    def measure(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        partitions: list[TopicPartition] = []
        metadata = consumer.list_topics(timeout=10)
        for topic in self._topics():
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                continue
            partitions += [TopicPartition(topic, p) for p in described.partitions]
        out: dict[tuple[str, int], int] = {}
        if not partitions:
            return out
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            out[(tp.topic, tp.partition)] = behind = lag(tp.offset, low, high)
            self._gauge.labels(self._group, tp.topic, str(tp.partition)).set(behind)
        return out
