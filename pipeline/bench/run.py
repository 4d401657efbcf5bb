"""`cwn bench`: the pipeline against raw Kafka pass-through, in one run, on one broker.

Every figure is taken in the same run as its baseline, so that ratios stay meaningful on a
shared, noisy machine. The corpus is the sample feed in Avro only (about 500 bytes per alert,
20% duplicates, no bad records) for a directory of 1,152 members: about 60% inside alerts for
one member, 40% sector intelligence at TLP:GREEN that fans out to the members subscribed.

Throughput is records over the span between the first and the last record written (see
`measure`). Latency is open-loop: records are sent on a fixed schedule at a share of the
measured pipeline throughput, whatever the pipeline does, and each delivery's latency is its
member-topic timestamp (the broker's append time, see `measure`) minus the moment its alert
was sent.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from pipeline.bench import measure
from pipeline.bench.passthrough import aiokafka_passthrough, confluent_fanout, confluent_passthrough
from pipeline.bench.rebalance import rebalance
from pipeline.control import publish_feeds, publish_members
from pipeline.demo.feed import FeedRecord, SampleFeed, demo_feeds
from pipeline.demo.main import local_broker
from pipeline.demo.run import (
    Worker,
    cleanup_namespace,
    member_topics,
    produce_feed,
    running_workers,
    wait_settled,
)
from pipeline.directory import Directory, generate_members
from pipeline.kafka import count_records, ensure_topics, make_producer
from pipeline.serde import alert_codec
from pipeline.settings import Settings
from pipeline.topics import NORMALISED, RAW, TopicSpec, dedup_changelog, dedup_eos_changelog, pipeline_topics

BENCH_PREFIX = "bench-"
SOURCE, TARGET = "bench.source", "bench.target"

Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    alerts: int = 50_000
    members: int = 1152
    duplicate_ratio: float = 0.2
    latency_seconds: float = 10.0
    loads: tuple[float, ...] = (0.25, 0.5, 0.8)
    rates: tuple[float, ...] = ()
    state_keys: int = 1_000_000
    recovery_keys: int = 1_000_000
    rebalance_seconds: float = 30.0
    workers: int = 1
    timeout: float = 900.0


def corpus(directory: Directory, count: int, duplicate_ratio: float, seed: int = 11) -> SampleFeed:
    return SampleFeed(
        list(directory), seed=seed, duplicate_ratio=duplicate_ratio, bad_ratio=0.0, avro_share=1.0
    )


def _wait_count(settings: Settings, topic: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count_records(settings, [topic])[topic] < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic} did not reach {count} records in {timeout:.0f}s")
        time.sleep(0.2)


def _own_span(settings: Settings, topic: str) -> measure.Span:
    return measure.span(settings, [topic], [topic])


def _rate(count: int, span: measure.Span) -> float:
    return round(count / span.seconds, 1)


def passthroughs(
    settings: Settings, records: Sequence[FeedRecord], say: Say, timeout: float
) -> dict[str, float]:
    """records/s of the three byte pass-throughs over the same preloaded source topic."""
    source = settings.topic(SOURCE)
    targets = {name: settings.topic(f"{TARGET}.{name}") for name in ("confluent", "aiokafka", "faust")}
    ensure_topics(settings, [TopicSpec(t, settings.partitions) for t in (source, *targets.values())])
    measure.stamp_on_arrival(settings, targets.values())
    produce_feed(settings, records, topic=source)
    count = len(records)
    rates = {}
    say(f"raw_confluent: forwarding {count} records...")
    confluent_passthrough(settings, source, targets["confluent"], count, f"{settings.group_id}.confluent")
    rates["raw_confluent"] = _rate(count, _own_span(settings, targets["confluent"]))
    say(f"raw_aiokafka: forwarding {count} records...")
    aiokafka_passthrough(settings, source, targets["aiokafka"], count, f"{settings.group_id}.aiokafka")
    rates["raw_aiokafka"] = _rate(count, _own_span(settings, targets["aiokafka"]))
    say(f"faust_passthrough: forwarding {count} records...")
    log_path = settings.state_dir / "logs" / f"faust-passthrough-{settings.namespace}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cwn-bench-faust-") as data_dir, log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.bench.passthrough", settings.bootstrap, source,
             targets["faust"], f"{settings.group_id}.faust", data_dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_count(settings, targets["faust"], count, timeout)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    rates["faust_passthrough"] = _rate(count, _own_span(settings, targets["faust"]))
    return rates


def fanout_baseline(
    settings: Settings, directory: Directory, records: Sequence[FeedRecord], writes: int, say: Say
) -> float:
    """writes/s of confluent-kafka forwarding the corpus as `writes` records (the pipeline's
    deliveries) over one topic per member, shaped as member topics: the cost of routing's
    writes alone, with the same client, broker and topic count."""
    source = settings.topic(SOURCE)
    targets = [settings.topic(f"{TARGET}.fanout.{member.id}") for member in directory]
    ensure_topics(settings, [TopicSpec(t, 1) for t in targets])
    measure.stamp_on_arrival(settings, targets)
    say(f"raw_fanout: {len(records)} records as {writes} writes over {len(targets)} topics...")
    confluent_fanout(settings, source, targets, len(records), writes, f"{settings.group_id}.fanout")
    return _rate(writes, measure.span(settings, targets, targets))


def stamp_outputs_on_arrival(settings: Settings) -> None:
    """The pipeline's timed outputs, the normalised topic and the member topics, stamped by the
    broker (`measure.stamp_on_arrival`)."""
    measure.stamp_on_arrival(settings, [settings.topic(NORMALISED), *member_topics(settings)])


def pipeline_run(
    settings: Settings,
    workers: Sequence[Worker],
    directory: Directory,
    records: Sequence[FeedRecord],
    timeout: float,
) -> dict[str, Any]:
    """Alerts/s and deliveries/s through the whole pipeline, and the workers' CPU per alert."""
    pids = [w.process.pid for w in workers if w.process is not None]
    cpu_before = sum(measure.cpu_seconds(pid) for pid in pids)
    produced = produce_feed(settings, records)
    counts = wait_settled(settings, workers, directory, produced, timeout)
    if counts.lost or not counts.settled():
        raise RuntimeError(f"the pipeline did not account for every record: {counts.as_dict()}")
    cpu = sum(measure.cpu_seconds(pid) for pid in pids) - cpu_before
    timing = measure.span(settings, [settings.topic(NORMALISED)], member_topics(settings))
    return {
        "alerts_per_s": _rate(produced, timing),
        "deliveries_per_s": _rate(counts.deliveries, timing),
        "alerts": produced,
        "deliveries": counts.deliveries,
        "seconds": round(timing.seconds, 2),
        "cpu_seconds_per_1000_alerts": round(cpu / produced * 1000, 3),
        "counts": counts.as_dict(),
    }


def pipeline_eos_run(
    base: Settings,
    directory: Directory,
    feed: SampleFeed,
    records: Sequence[FeedRecord],
    options: BenchOptions,
    say: Say,
) -> dict[str, Any]:
    """`pipeline_run` and the latency levels with exactly-once processing, on a namespace of its
    own: the same corpus, members and feeds, the workers running both stages in Kafka
    transactions. Counts are of committed records, as a reader of committed records sees them."""
    settings = base.model_copy(
        update={"namespace": f"{base.namespace}-eos", "processing_guarantee": "exactly_once"}
    )
    try:
        ensure_topics(settings, pipeline_topics(settings))
        publish_members(settings, directory)
        publish_feeds(settings, demo_feeds())
        stamp_outputs_on_arrival(settings)
        with running_workers(settings, options.workers, "bench-eos") as workers:
            say(f"pipeline_eos: {len(records)} alerts...")
            result = pipeline_run(settings, workers, directory, records, options.timeout)
            result["latency_ms"] = latency_levels(
                settings, workers, directory, feed, result["alerts_per_s"], len(records), options, say
            )
            pids = [w.process.pid for w in workers if w.process]
            result["peak_rss_bytes"] = max(map(measure.peak_rss_bytes, pids))
            # The state lives in memory: a restarted worker always reads its changelog whole.
            say(f"recovery_eos: SIGKILL with {options.recovery_keys} dedup keys to read back...")
            prefill_changelog(settings, options.recovery_keys, dedup_eos_changelog(settings))
            seconds = _kill_and_time(settings, workers[0], feed, options.timeout)
            process = workers[0].process
            assert process is not None
            result["recovery"] = {
                "keys": options.recovery_keys,
                "seconds_rebuilding_from_changelog": seconds,
                "peak_rss_bytes_after": measure.peak_rss_bytes(process.pid),
            }
            return result
    finally:
        cleanup_namespace(settings, settings.namespace + ".")


def latency_levels(
    settings: Settings, workers: Sequence[Worker], directory: Directory, feed: SampleFeed, throughput: float,
    ingested: int, options: BenchOptions, say: Say,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """`latency_at` each of the options' loads, as shares of `throughput` ("50%"), then at each
    of its fixed rates ("60/s"), one after another."""
    levels = [(f"{round(load * 100)}%", throughput * load) for load in options.loads]
    levels += [(f"{rate:g}/s", rate) for rate in options.rates]
    latency = {}
    for name, rate in levels:
        say(f"latency at {name} ({rate:.1f} alerts/s) for {options.latency_seconds}s...")
        level = latency_at(
            settings, workers, directory, feed, rate, options.latency_seconds, ingested, options.timeout
        )
        ingested += level.pop("alerts")
        latency[name] = level
    return latency


def open_loop(settings: Settings, records: Sequence[FeedRecord], rate: float) -> dict[str, float]:
    """Send records at `rate` per second on a fixed schedule; returns each alert id's send time."""
    producer = make_producer(settings)
    topic = settings.topic(RAW)
    # A new idempotent producer first fetches metadata and a producer id; do that before the
    # clock starts, or the first records' latency includes the client's own start-up.
    producer.list_topics(topic, timeout=30)
    warm_until = time.monotonic() + 1.0
    while time.monotonic() < warm_until:
        producer.poll(0.05)
    sent: dict[str, float] = {}
    refused: list[KafkaError] = []

    def report(error: KafkaError | None, _: Any) -> None:
        if error is not None:
            refused.append(error)

    started = time.monotonic()
    for n, record in enumerate(records):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[record.alert_id] = time.time()
        producer.produce(topic, value=record.value, headers=list(record.headers), on_delivery=report)
        producer.poll(0)
    while producer.flush(1.0):
        pass
    if refused:  # not the pipeline's loss: the load itself did not arrive
        raise RuntimeError(f"{len(refused)} of the load's records were refused, the first: {refused[0]!r}")
    return sent


def latency_at(
    settings: Settings, workers: Sequence[Worker], directory: Directory, feed: SampleFeed, rate: float,
    seconds: float,
    already: int, timeout: float,
) -> dict[str, Any]:  # fmt: skip
    """Delivery latency percentiles (ms) under an open-loop load of `rate` alerts/s; those of
    the first hop alone (send to the normalised record), which tells the two stages apart; and
    per alert, those of its completion (send to its last delivery, `measure.completion_ms`).

    The delivery percentiles weigh each alert by its members: a sector warning to three
    hundred counts three hundred times. The completion percentiles count each alert once, at
    the moment its last member could read it."""
    topics = member_topics(settings)
    normalised = settings.topic(NORMALISED)
    start = measure.end_offsets(settings, [*topics, normalised])
    records = feed.records(max(1, round(rate * seconds)))
    sent = open_loop(settings, records, rate)
    counts = wait_settled(settings, workers, directory, already + len(records), timeout)
    if counts.lost or not counts.settled():
        raise RuntimeError(f"the pipeline did not account for every record: {counts.as_dict()}")
    members_start = {k: v for k, v in start.items() if k[0] != normalised}
    arrivals = measure.arrivals_since(settings, members_start)
    latencies = [(stamp - at) * 1000 for key, stamp in arrivals if (at := sent.get(key.decode())) is not None]
    complete = measure.completion_ms(arrivals, sent)
    codec = alert_codec()
    normalised_start = {k: v for k, v in start.items() if k[0] == normalised}
    first_hop = [
        (stamp - sent[alert_id]) * 1000
        for value, stamp in measure.values_since(settings, normalised_start)
        if (alert_id := codec.decode(value)["id"]) in sent
    ]
    return {
        "alerts": len(records),
        "rate": round(rate, 1),
        "deliveries": len(latencies),
        "p50": round(measure.percentile(latencies, 50), 1),
        "p99": round(measure.percentile(latencies, 99), 1),
        "p99.9": round(measure.percentile(latencies, 99.9), 1),
        "to_normalised_p50": round(measure.percentile(first_hop, 50), 1),
        "to_normalised_p99": round(measure.percentile(first_hop, 99), 1),
        "complete_p50": round(measure.percentile(complete, 50), 1),
        "complete_p99": round(measure.percentile(complete, 99), 1),
    }


def prefill_changelog(settings: Settings, keys: int, topic: str = "") -> None:
    """Write `keys` dedup entries to the table's changelog (or `topic`), as a worker that has seen
    that many fingerprints would have; partitioned like the normalised stream (murmur2 of the key)."""
    from pipeline.dedupe import Seen

    producer = make_producer(settings, **{"linger.ms": 50})
    topic = topic or dedup_changelog(settings)
    now = int(time.time() * 1_000_000)
    for n in range(keys):
        value = Seen(now, now, 1, (0, n)).to_bytes()
        while True:
            try:
                producer.produce(topic, value, f"{n:032x}".encode())
                break
            except BufferError:
                producer.poll(0.05)
    while producer.flush(1.0):
        pass


def recovery(
    settings: Settings, worker: Worker, feed: SampleFeed, keys: int, timeout: float
) -> dict[str, Any]:
    """Seconds from SIGKILL to the first new delivery, for a worker whose table holds `keys`.

    First the worker is killed while `keys` entries it has never stored locally wait in the
    changelog (a worker moved to a new node replays them all); then, once it has them, it is
    killed again with its local state on disk (a crash in place replays only the tail).
    """
    prefill_changelog(settings, keys)
    rebuilding = _kill_and_time(settings, worker, feed, timeout)
    worker.wait_ready(timeout)
    in_place = _kill_and_time(settings, worker, feed, timeout)
    return {
        "keys": keys,
        "seconds_to_first_output": in_place,
        "seconds_rebuilding_from_changelog": rebuilding,
    }


def _kill_and_time(settings: Settings, worker: Worker, feed: SampleFeed, timeout: float) -> float:
    start = measure.end_offsets(settings, member_topics(settings))
    probes = feed.records(20)
    worker.kill()
    killed = time.time()
    produce_feed(settings, probes)
    worker.start()
    wanted = {p.alert_id.encode() for p in probes}
    deadline = time.monotonic() + timeout
    while True:
        arrivals = [stamp for key, stamp in measure.arrivals_since(settings, start) if key in wanted]
        if arrivals:
            return round(min(arrivals) - killed, 2)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no delivery {timeout:.0f}s after the worker was killed")
        time.sleep(0.2)


def dedup_state_bytes(keys: int) -> int:
    """Bytes on disk of a Faust RocksDB table holding `keys` fingerprints with their window."""
    from faust.stores.rocksdb import RocksDBOptions

    from pipeline.dedupe import Seen

    with tempfile.TemporaryDirectory(prefix="cwn-bench-state-") as folder:
        path = Path(folder) / "dedupe.db"
        db = RocksDBOptions(use_rocksdict=True).open(path)
        now = int(time.time() * 1_000_000)
        for n in range(keys):
            db[f"{n:032x}".encode()] = Seen(now, now + n, 1 + n % 5, (n % 4, n)).to_bytes()
        db.flush()
        db.close()
        return measure.directory_bytes(path)


def run_bench(base: Settings, options: BenchOptions, say: Say) -> dict[str, Any]:
    """Run every measurement and return the result object `cwn bench --json` prints."""
    settings = base.model_copy(update={"namespace": base.namespace or f"{BENCH_PREFIX}{int(time.time())}"})
    directory = Directory(generate_members(options.members))
    feed = corpus(directory, options.alerts, options.duplicate_ratio)
    records = feed.records(options.alerts)
    result: dict[str, Any] = {
        "corpus": {
            "alerts": len(records),
            "mean_bytes": round(sum(len(r.value) for r in records) / len(records)),
            "duplicate_ratio": options.duplicate_ratio,
            "members": len(directory),
            "partitions": settings.partitions,
            "batch_size": settings.batch_size,
            "workers": options.workers,
        }
    }
    with local_broker(settings, say):
        if settings.namespace.startswith(BENCH_PREFIX):
            cleanup_namespace(settings, BENCH_PREFIX)
        try:
            result |= passthroughs(settings, records, say, options.timeout)
            ensure_topics(settings, pipeline_topics(settings))
            say(f"Importing {len(directory)} members...")
            publish_members(settings, directory)
            publish_feeds(settings, demo_feeds())
            stamp_outputs_on_arrival(settings)
            with running_workers(settings, options.workers, "bench") as workers:
                say(f"pipeline: {len(records)} alerts...")
                result["pipeline"] = pipeline_run(settings, workers, directory, records, options.timeout)
                throughput = result["pipeline"]["alerts_per_s"]
                result["latency_ms"] = latency_levels(
                    settings, workers, directory, feed, throughput, len(records), options, say
                )
                pids = [w.process.pid for w in workers if w.process]
                result["peak_rss_bytes"] = {"pipeline_worker": max(map(measure.peak_rss_bytes, pids))}
                if options.rebalance_seconds:
                    rate = throughput / 2
                    say(f"rebalance: a worker joins, then one leaves, at {rate:.1f} alerts/s...")
                    moving = feed.records(max(3, round(rate * options.rebalance_seconds)))
                    result["rebalance"] = rebalance(
                        settings, workers[0], directory, moving, rate, open_loop, options.timeout
                    )
                say(f"recovery: SIGKILL with {options.recovery_keys} dedup keys to replay...")
                result["recovery"] = recovery(
                    settings, workers[0], feed, options.recovery_keys, options.timeout
                )
            writes = result["pipeline"]["deliveries"]
            result["raw_fanout"] = fanout_baseline(settings, directory, records, writes, say)
            result["pipeline_eos"] = pipeline_eos_run(settings, directory, feed, records, options, say)
        finally:
            cleanup_namespace(settings, settings.namespace + ".")
    say(f"dedup state: writing {options.state_keys} keys...")
    state = dedup_state_bytes(options.state_keys)
    result["dedup_state_bytes_per_1m_keys"] = round(state * 1_000_000 / max(options.state_keys, 1))
    result["r_pipeline"] = round(result["pipeline"]["alerts_per_s"] / result["raw_confluent"], 3)
    result["r_framework"] = round(result["faust_passthrough"] / result["raw_aiokafka"], 3)
    result["r_fanout"] = round(result["pipeline"]["deliveries_per_s"] / result["raw_fanout"], 3)
    result["r_pipeline_eos"] = round(result["pipeline_eos"]["alerts_per_s"] / result["raw_confluent"], 3)
    result["r_eos"] = round(result["pipeline_eos"]["alerts_per_s"] / result["pipeline"]["alerts_per_s"], 3)
    return result
