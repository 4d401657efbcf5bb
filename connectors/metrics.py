"""The connectors' Prometheus metrics, created on a given registry.

Counters per connector and outcome make the delivery side of the conservation law checkable:
every delivery read from a member topic ends delivered or dead-lettered, so
  cwn_connector_deliveries_total{outcome="read"}
    == sum(cwn_connector_deliveries_total{outcome=~"delivered|deadlettered"}) + queued.
Per-member labels appear only on the circuit gauge, whose set is bounded by the directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from pipeline.metrics import control_read_failures

_DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class ConnectorMetrics:
    deliveries: Counter
    attempts: Counter
    delivery_seconds: Histogram
    latency_seconds: Histogram
    circuit_state: Gauge
    queued: Gauge
    paused: Gauge
    consumer_lag: Gauge
    control_read_failures: Counter
    build: Info


def create_connector_metrics(registry: CollectorRegistry, version: str = "") -> ConnectorMetrics:
    """Register every connector metric on `registry`."""
    metrics = ConnectorMetrics(
        deliveries=Counter(
            "cwn_connector_deliveries_total",
            "Deliveries by what became of them: read from member topics, delivered, "
            "deadlettered (refused for good or retries exhausted), or skipped (no target of "
            "this connector any more).",
            ["connector", "outcome"],
            registry=registry,
        ),
        attempts=Counter(
            "cwn_connector_attempts_total",
            "Sends to endpoints, per delivery, by result: delivered, retry, failed.",
            ["connector", "result"],
            registry=registry,
        ),
        delivery_seconds=Histogram(
            "cwn_connector_delivery_seconds",
            "Time from reading a delivery off its member topic to its final outcome.",
            ["connector"],
            buckets=_DELIVERY_BUCKETS,
            registry=registry,
        ),
        latency_seconds=Histogram(
            "cwn_connector_end_to_end_seconds",
            "Time from an alert's time_observation to its delivery to a member's system.",
            ["connector"],
            buckets=_DELIVERY_BUCKETS,
            registry=registry,
        ),
        circuit_state=Gauge(
            "cwn_connector_circuit_state",
            "Circuit breaker per member endpoint: 0 closed, 1 on probation, 2 open.",
            ["connector", "member", "target"],
            registry=registry,
        ),
        queued=Gauge(
            "cwn_connector_queued_deliveries",
            "Deliveries read and not yet delivered or dead-lettered.",
            ["connector"],
            registry=registry,
        ),
        paused=Gauge(
            "cwn_connector_paused_members",
            "Member topics paused because their endpoint's queue is full.",
            ["connector"],
            registry=registry,
        ),
        consumer_lag=Gauge(
            "cwn_consumer_lag_records",
            "Records of a member topic partition the connector group has not committed yet, as "
            "measured from the broker (one series per member served: bounded by the directory).",
            ["group", "topic", "partition"],
            registry=registry,
        ),
        control_read_failures=control_read_failures(registry),
        build=Info("cwn_build", "Version of the running pipeline.", registry=registry),
    )
    metrics.build.info({"version": version})
    return metrics
