"""The pipeline's Prometheus metrics, created on a given registry (tests pass their own).

Names follow Prometheus conventions: `cwn_` prefix, base units, `_total` counters, and labels
drawn from small fixed sets (stage, reason, format), never from alert content or member ids.
The conservation law reads directly off them:
  cwn_records_in_total{stage="normalise"} == cwn_alerts_out_total{stage="normalise"} (per alert)
  ... see docs in README ("Counts that balance").
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


@dataclass(frozen=True)
class Metrics:
    records_in: Counter
    records_out: Counter
    deadlettered: Counter
    raw_records: Counter
    skipped: Counter
    duplicates: Counter
    updates: Counter
    rule_effects: Counter
    routed: Counter
    stage_seconds: Histogram
    latency_seconds: Histogram
    directory_members: Gauge
    directory_version: Gauge
    ready: Gauge
    consumer_lag: Gauge
    unread_topics: Gauge
    dedup_keys: Gauge
    dedup_expired: Counter
    dedup_restored: Counter
    transactions: Counter
    control_read_failures: Counter
    build: Info


def create_metrics(registry: CollectorRegistry, version: str = "") -> Metrics:
    """Register every pipeline metric on `registry`."""
    metrics = Metrics(
        records_in=Counter("cwn_records_in_total", "Records read by a stage.", ["stage"], registry=registry),
        records_out=Counter(
            "cwn_records_out_total",
            "Records written onward by a stage (alerts for normalise and dedupe and enrich, "
            "member deliveries for route).",
            ["stage"],
            registry=registry,
        ),
        deadlettered=Counter(
            "cwn_deadlettered_total",
            "Records written to the dead-letter topic (a whole raw record, or one item of it), "
            "by the field that was wrong.",
            ["stage", "reason"],
            registry=registry,
        ),
        raw_records=Counter(
            "cwn_raw_records_total",
            "Raw records normalised, by what they became: accepted (gave alerts), skipped (held "
            "nothing to alert on) or rejected (dead-lettered whole).",
            ["outcome"],
            registry=registry,
        ),
        skipped=Counter(
            "cwn_skipped_items_total",
            "Items of raw records deliberately not turned into alerts, by reason (for example a "
            "Suricata flow event or a revoked STIX indicator).",
            ["reason"],
            registry=registry,
        ),
        duplicates=Counter(
            "cwn_duplicates_total", "Alerts dropped as repeats within the dedup window.", registry=registry
        ),
        updates=Counter(
            "cwn_updates_total",
            "Repeats forwarded as updates because they are more severe than every earlier sighting "
            "in the dedup window.",
            registry=registry,
        ),
        rule_effects=Counter(
            "cwn_enrichment_rule_effects_total",
            "What enrichment rules did, by rule (warning list, watch list entry or severity rule) and "
            "effect: indicator-removed, suppressed, downgraded, raised, severity-set.",
            ["rule", "effect"],
            registry=registry,
        ),
        routed=Counter(
            "cwn_routed_total", "Member deliveries written, by routing rule.", ["rule"], registry=registry
        ),
        stage_seconds=Histogram(
            "cwn_stage_batch_seconds",
            "Time a stage spends on one batch, including the wait for its writes to be acknowledged.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        ),
        latency_seconds=Histogram(
            "cwn_end_to_end_latency_seconds",
            "From an alert's observation time to its delivery record being acknowledged on a member topic.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        directory_members=Gauge(
            "cwn_directory_members", "Members in the directory in force.", registry=registry
        ),
        directory_version=Gauge(
            "cwn_directory_version", "Changes of the directory applied since start.", registry=registry
        ),
        ready=Gauge(
            "cwn_worker_ready",
            "1 once the worker has its partitions, its tables recovered and its directory read; "
            "0 while it starts or rebalances.",
            registry=registry,
        ),
        consumer_lag=Gauge(
            "cwn_consumer_lag_records",
            "Records of a partition the consumer group has not committed yet (high watermark minus "
            "committed offset), as measured from the broker.",
            ["group", "topic", "partition"],
            registry=registry,
        ),
        unread_topics=Gauge(
            "cwn_unread_producer_topics",
            "Producers' own raw topics on the cluster that this worker does not read: made after it "
            "started (at least once; a restart reads them).",
            registry=registry,
        ),
        dedup_keys=Gauge(
            "cwn_dedup_keys",
            "Fingerprints in this worker's part of the dedup state (counted every 15 s at least once, "
            "after each batch exactly once).",
            registry=registry,
        ),
        dedup_expired=Counter(
            "cwn_dedup_expired_total",
            "Fingerprints forgotten by the dedup table's sweep: their last sighting was more than two "
            "windows ago.",
            registry=registry,
        ),
        dedup_restored=Counter(
            "cwn_dedup_restored_total",
            "Changelog records of the dedup state read back in bulk when partitions are assigned "
            "(a worker that lost its local state, or took partitions over from another).",
            registry=registry,
        ),
        transactions=Counter(
            "cwn_transactions_total",
            "Kafka transactions of a stage (exactly-once processing only), by outcome: committed, "
            "or aborted (the batch is read again and its state changes dropped).",
            ["stage", "outcome"],
            registry=registry,
        ),
        control_read_failures=control_read_failures(registry),
        build=Info("cwn_build", "Version of the running pipeline.", registry=registry),
    )
    metrics.build.info({"version": version})
    return metrics


def control_read_failures(registry: CollectorRegistry) -> Counter:
    """Failed attempts at reading the control topics (`DirectoryView.on_failure`); workers and
    connectors both export it, so one alert covers every process that routes or delivers."""
    return Counter(
        "cwn_control_read_failures_total",
        "Failed attempts at reading the control topics; the directory, feeds and rules in force "
        "stay until a read succeeds.",
        registry=registry,
    )


def register_runtime_metrics(registry: CollectorRegistry) -> None:
    """Export this process's standard `process_*` (CPU, memory, file descriptors) and `python_*`
    metrics on `registry`."""
    ProcessCollector(registry=registry)
    registry.register(PLATFORM_COLLECTOR)
    registry.register(GC_COLLECTOR)


def register_child_metrics(registry: CollectorRegistry, name: str, pid: Callable[[], int | None]) -> None:
    """Export a child process's `cwn_<name>_process_*` metrics on `registry`, read at each scrape
    from the process whose id `pid` gives; nothing while it gives None (not started, or ended)."""
    ProcessCollector(namespace=f"cwn_{name}", pid=_pid_or_none(pid), registry=registry)


def _pid_or_none(pid: Callable[[], int | None]) -> Callable[[], str]:
    # The collector reads /proc/<answer>/stat and exports nothing when that cannot be read.
    def answer() -> str:
        current = pid()
        return "none" if current is None else str(current)

    return answer


def observe_many(histogram: Histogram, value: float, count: int) -> None:
    """Record `count` observations of one value, as `count` calls of `observe` would.

    The sum and the one bucket the value falls in move once. Where the client keeps its
    buckets differently (a later version), it observes one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for _ in range(count):
            histogram.observe(value)
        return
    total.inc(value * count)
    buckets[bisect.bisect_left(bounds, value)].inc(count)
