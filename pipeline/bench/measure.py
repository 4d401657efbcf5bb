"""What the benchmark measures with: record timestamps on topics, process CPU and memory.

Throughput and latency are read from the output topics, not from the clock of the code under
test. The bench's output topics stamp each record with the moment the broker appended it
(`message.timestamp.type=LogAppendTime`, set by `stamp_on_arrival`), so a record counts as
written when a reader could first see it, whichever client wrote it and however long that
client held it: a run's span is the time between the first and the last record its stage
wrote, and a delivery's latency ends when it reached its member topic.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from pipeline.kafka import make_admin, make_reader, read_topics, watermarks
from pipeline.settings import Settings

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Span:
    """First and last record timestamps (seconds since the epoch) over some topics."""

    first: float
    last: float

    @property
    def seconds(self) -> float:
        return max(self.last - self.first, 1e-3)


_STAMP = "message.timestamp.type"


def stamp_on_arrival(settings: Settings, topics: Iterable[str], timeout: float = 60.0) -> None:
    """Have the broker stamp every record appended to `topics` from now on with its append
    time (LogAppendTime) instead of the producer's, so that timings end at the broker.

    Returns once the broker describes every topic so. Raises if it refuses for any topic: a
    bench timed on the producers' clocks would leave out the time records wait in the client
    and in flight."""
    names = list(topics)
    if not names:
        return
    entry = ConfigEntry(_STAMP, "LogAppendTime", incremental_operation=AlterConfigOpType.SET)
    admin = make_admin(settings)
    resources = [ConfigResource(ResourceType.TOPIC, name, incremental_configs=[entry]) for name in names]
    for future in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
        future.result(timeout)
    deadline = time.monotonic() + timeout
    while names:
        described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
        names = [r.name for r, f in described.items() if f.result(timeout)[_STAMP].value != "LogAppendTime"]
        if names and time.monotonic() > deadline:
            left = f"{names[0]} and {len(names) - 1} more"
            raise TimeoutError(f"{left} not stamped by the broker after {timeout:.0f}s")
        if names:
            time.sleep(0.2)


def _partitions(settings: Settings, topics: Iterable[str]) -> list[tuple[TopicPartition, int, int]]:
    """Every partition holding records, with its low and high watermark."""
    return [
        (TopicPartition(*key), low, high)
        for key, (low, high) in watermarks(settings, topics).items()
        if high > low
    ]


_TAIL = 32


def _edge_each(
    consumer: Consumer, assignment: list[TopicPartition], first: bool, timeout: float
) -> list[float]:
    """Per assigned partition, the timestamp of the first record read from its offset, or (not
    `first`) of the last one before its end."""
    consumer.assign(assignment)
    wanted = {(tp.topic, tp.partition) for tp in assignment}
    latest: dict[tuple[str, int], float] = {}
    stamps: list[float] = []
    deadline = time.monotonic() + timeout
    while wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(wanted)} partitions did not return their record in time")
        for message in consumer.consume(1000, timeout=1.0):
            key = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                if key in wanted:  # at its end: the last record seen (none: only markers left)
                    wanted.discard(key)
                    stamps.extend([latest[key]] if key in latest else [])
                continue
            if key not in wanted:
                continue
            latest[key] = message.timestamp()[1] / 1000
            if first:
                wanted.discard(key)
                stamps.append(latest[key])
                consumer.pause([TopicPartition(*key)])
    return stamps


def span(settings: Settings, first_of: Sequence[str], last_of: Sequence[str], timeout: float = 60.0) -> Span:
    """From the earliest first record of `first_of` to the latest last record of `last_of`."""
    firsts = _edge_stamps(settings, first_of, first=True, timeout=timeout)
    lasts = _edge_stamps(settings, last_of, first=False, timeout=timeout)
    if not firsts or not lasts:
        raise ValueError("no records to time: the stage wrote nothing")
    return Span(min(firsts), max(lasts))


def _edge_stamps(settings: Settings, topics: Sequence[str], first: bool, timeout: float) -> list[float]:
    # A fresh consumer each time: librdkafka keeps a partition paused across assignments.
    consumer = make_reader(settings, **{"enable.partition.eof": True})
    try:
        # The last few offsets, not just the last: under transactions the last offsets hold
        # commit markers, which readers never see.
        edges = [
            TopicPartition(tp.topic, tp.partition, low if first else max(low, high - _TAIL))
            for tp, low, high in _partitions(settings, topics)
        ]
        return _edge_each(consumer, edges, first, timeout)
    finally:
        consumer.close()


def end_offsets(settings: Settings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of `topics`: where records written next will start."""
    return {key: high for key, (_, high) in watermarks(settings, topics).items()}


def arrivals_since(
    settings: Settings, start: dict[tuple[str, int], int], timeout: float = 120.0
) -> list[tuple[bytes, float]]:
    """(key, timestamp in seconds) of every record written after the `start` offsets."""
    messages = read_topics(settings, sorted({t for t, _ in start}), timeout, start)
    return [(m.key() or b"", m.timestamp()[1] / 1000) for m in messages]


def values_since(
    settings: Settings, start: dict[tuple[str, int], int], timeout: float = 120.0
) -> list[tuple[bytes, float]]:
    """(value, timestamp in seconds) of every record written after the `start` offsets."""
    messages = read_topics(settings, sorted({t for t, _ in start}), timeout, start)
    return [(m.value() or b"", m.timestamp()[1] / 1000) for m in messages]


def completion_ms(arrivals: Iterable[tuple[bytes, float]], sent: Mapping[str, float]) -> list[float]:
    """Per alert of `sent` (alert id -> send time, seconds) with any of `arrivals` (alert id as
    the record key, timestamp in seconds): milliseconds from its send to its last delivery,
    the moment every member it reaches could read it. Alerts with no arrival (duplicates,
    alerts routed to nobody) have no value; arrivals of alerts not in `sent` are ignored."""
    last: dict[str, float] = {}
    for key, stamp in arrivals:
        alert_id = key.decode()
        if alert_id in sent and stamp > last.get(alert_id, -math.inf):
            last[alert_id] = stamp
    return [(stamp - sent[alert_id]) * 1000 for alert_id, stamp in last.items()]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(round(q / 100 * len(ordered), 9)))  # round: 99.9/100*1000 > 999
    return ordered[rank - 1]


def process_tree(pid: int) -> list[int]:
    """`pid` and the live processes descended from it (a worker and its writer process)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while listed
        children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        tree.append(queue.pop())
        queue.extend(children.get(tree[-1], ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of a process (all its threads) and its descendants."""
    return _own_cpu_seconds(pid) + sum(_or_zero(_own_cpu_seconds, child) for child in process_tree(pid)[1:])


def _own_cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and ')')."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def peak_rss_bytes(pid: int) -> int:
    """The highest resident set size of a process (VmHWM), plus its descendants' highest:
    at most the peak they held together."""
    return _own_peak_rss(pid) + sum(_or_zero(_own_peak_rss, child) for child in process_tree(pid)[1:])


def _own_peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmHWM for process {pid}")


def _or_zero(read: Callable[[int], float], pid: int) -> float:
    """A descendant's reading, or nothing for one that ended meanwhile."""
    try:
        return read(pid)
    except (OSError, ValueError):
        return 0


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
