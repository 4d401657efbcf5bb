"""The bench's scale-out phase: a second worker joins a running group, then the first leaves,
under an open-loop load, and what the moves cost.

Every figure comes from the broker, not from the workers' counters (the worker that leaves
takes its counters with it): the alerts sent, the alerts normalised, the enriched stream
routed again offline (what members are owed) and the member topics (what they got).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import TopicPartition

from pipeline.bench import measure
from pipeline.demo.feed import FeedRecord
from pipeline.demo.run import Worker, free_port, member_topics, remove_state
from pipeline.directory import Directory
from pipeline.kafka import count_records, make_consumer, read_topics
from pipeline.routing import RoutingIndex, route
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import DEADLETTER, ENRICHED, NORMALISED, RAW, member_topic_prefix

#: Seconds after the topics fall quiet that a missing alert or delivery may still arrive.
_LATE_SECONDS = 60.0


def rebalance(
    settings: Settings,
    leaving: Worker,
    directory: Directory,
    records: Sequence[FeedRecord],
    rate: float,
    send: Callable[[Settings, Sequence[FeedRecord], float], dict[str, float]],
    timeout: float,
) -> dict[str, Any]:
    """Send `records` at `rate` alerts/s with `send` (an open loop); a third of the way in a new
    worker joins the group of `leaving`, and once it is ready and two thirds are sent, `leaving`
    stops (SIGTERM: a clean leave, as a scale-down or a rolling update does it).

    Returns delivery latency over the whole phase, when the moves happened, how long the leaver
    took to stop and its exit code (not 0: it was killed after a minute, or failed), and the cost:
    `lost_alerts` (sent, never normalised), `lost_deliveries` (owed by routing, never on a
    member topic) and `repeated_deliveries` (at least once may write a batch in flight twice).
    Raises if anything was lost, naming up to ten lost alerts with where each was in the raw
    topic, whether it was dead-lettered, and the group's committed offsets there.
    """
    topics = member_topics(settings)
    normalised, enriched = settings.topic(NORMALISED), settings.topic(ENRICHED)
    start = measure.end_offsets(settings, [*topics, normalised, enriched])
    inputs = measure.end_offsets(settings, [settings.topic(RAW), settings.topic(DEADLETTER)])
    seconds = len(records) / rate
    sent: dict[str, float] = {}
    sender = threading.Thread(target=lambda: sent.update(send(settings, records, rate)), name="bench-send")
    began, began_wall = time.monotonic(), time.time()
    sender.start()
    joining = Worker(settings, "bench-join", free_port(), settings.state_dir / "logs")
    try:
        time.sleep(max(0.0, began + seconds / 3 - time.monotonic()))
        joined_at = time.monotonic() - began
        joining.start().wait_ready(timeout)
        ready_at = time.monotonic() - began
        time.sleep(max(0.0, began + 2 * seconds / 3 - time.monotonic()))
        left_at = time.monotonic() - began
        leaver_exit = leaving.stop()
        stopped_at = time.monotonic() - began
        sender.join()
        before = sum(offset for (topic, _), offset in start.items() if topic == normalised)
        _wait_quiet(settings, [*topics, normalised, enriched], normalised, before + len(records), timeout)
        deadline = time.monotonic() + min(timeout, _LATE_SECONDS)
        moves = (began_wall + joined_at, began_wall + left_at)
        outcome = _outcome(settings, directory, start, sent, moves)
        # Quiet is not done: the survivor may sit out a rebalance longer than the quiet spell,
        # with repeats already making up the count. Only what is still missing at the deadline
        # is lost.
        while (outcome["lost_alerts"] or outcome["lost_deliveries"]) and time.monotonic() < deadline:
            time.sleep(2.0)
            outcome = _outcome(settings, directory, start, sent, moves)
    finally:
        joining.stop()
        remove_state(joining)
    if outcome["lost_alerts"] or outcome["lost_deliveries"]:
        lost = {"missing": _traced(settings, inputs, outcome.pop("lost_ids"))}
        raise RuntimeError(f"alerts were lost while workers joined and left: {outcome | lost}")
    del outcome["lost_ids"]
    return {
        "rate": round(rate, 1),
        "seconds": round(seconds, 1),
        "joined_at_s": round(joined_at, 1),
        "joiner_ready_at_s": round(ready_at, 1),
        "left_at_s": round(left_at, 1),
        "leaver_stop_s": round(stopped_at - left_at, 1),
        "leaver_exit_code": leaver_exit,
        **outcome,
    }


def _wait_quiet(settings: Settings, topics: list[str], first: str, least: int, timeout: float) -> None:
    """Until topic `first` holds at least `least` records and no topic of `topics` has grown
    for three seconds: the survivor has caught up."""
    deadline = time.monotonic() + timeout
    previous, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = count_records(settings, topics)
        if now != previous:
            previous, quiet_since = now, time.monotonic()
        elif now[first] >= least and time.monotonic() - quiet_since >= 3.0:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the pipeline did not settle within {timeout:.0f}s after the moves")


def _since(start: dict[tuple[str, int], int], topics: set[str]) -> dict[tuple[str, int], int]:
    return {key: offset for key, offset in start.items() if key[0] in topics}


def _outcome(
    settings: Settings,
    directory: Directory,
    start: dict[tuple[str, int], int],
    sent: dict[str, float],
    moves: tuple[float, float],
) -> dict[str, Any]:
    """Latency overall and by when the alert was sent (before the join, between the join and
    the leave, after the leave), and what was lost or repeated."""
    codec = alert_codec()
    normalised, enriched = settings.topic(NORMALISED), settings.topic(ENRICHED)
    normalised_ids = {
        codec.decode(m.value())["id"]
        for m in read_topics(settings, [normalised], 120, _since(start, {normalised}))
    }
    index = RoutingIndex(directory)
    owed = set()
    for message in read_topics(settings, [enriched], 120, _since(start, {enriched})):
        alert = codec.decode(message.value())
        if alert["id"] in sent:
            owed.update((alert["id"], d.member_id) for d in route(alert, index))
    members = {topic for topic, _ in start} - {normalised, enriched}
    prefix = len(member_topic_prefix(settings))
    got = [
        ((m.key() or b"").decode(), m.topic()[prefix:], m.timestamp()[1] / 1000)
        for m in read_topics(settings, sorted(members), 120, _since(start, members))
    ]
    pairs = {(alert_id, member) for alert_id, member, _ in got}
    # (send time, latency in ms) of each delivery
    timed = [(sent[key], (stamp - sent[key]) * 1000) for key, _, stamp in got if key in sent]
    joined, left = moves
    phases = {
        "before_join": [ms for at, ms in timed if at < joined],
        "joining": [ms for at, ms in timed if joined <= at < left],
        "after_leave": [ms for at, ms in timed if at >= left],
    }
    lost = sorted(set(sent) - normalised_ids)
    return {
        "deliveries": len(got),
        **_percentiles([ms for _, ms in timed]),
        "by_phase": {phase: _percentiles(values) for phase, values in phases.items()},
        "lost_alerts": len(lost),
        "lost_ids": lost[:10],
        "lost_deliveries": len(owed - pairs),
        "repeated_deliveries": len(got) - len(pairs),
    }


def _traced(settings: Settings, start: dict[tuple[str, int], int], ids: list[str]) -> list[dict[str, Any]]:
    """Where each lost alert is in the raw topic (partition, offset) and whether the dead-letter
    topic holds it (its id in the original bytes), with the group's committed offset of that
    raw partition: what tells a record skipped by a commit from one refused."""
    raw, dead = settings.topic(RAW), settings.topic(DEADLETTER)
    found: dict[str, dict[str, Any]] = {alert_id: {"alert_id": alert_id} for alert_id in ids}
    needles = {alert_id.encode(): alert_id for alert_id in ids}
    for message in read_topics(settings, [raw, dead], 120, start):
        value = message.value() or b""
        for needle, alert_id in needles.items():
            if needle in value:
                where = [message.partition(), message.offset()]
                found[alert_id]["dead_lettered" if message.topic() == dead else "raw"] = where
    consumer = make_consumer(settings, settings.group_id)
    try:
        partitions = [TopicPartition(raw, partition) for (topic, partition) in start if topic == raw]
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
    finally:
        consumer.close()
    for entry in found.values():
        if "raw" in entry:
            entry["committed_offset_of_its_partition"] = committed.get(entry["raw"][0])
    return list(found.values())


def _percentiles(latencies: list[float]) -> dict[str, float]:
    return {
        "p50": round(measure.percentile(latencies, 50), 1),
        "p99": round(measure.percentile(latencies, 99), 1),
        "p99.9": round(measure.percentile(latencies, 99.9), 1),
        "max": round(max(latencies, default=float("nan")), 1),
    }
