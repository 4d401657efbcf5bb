"""The Grafana dashboard: well formed, and every query about a metric the project exports."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ops.promql import exported, used

DASHBOARD = Path(__file__).resolve().parents[2] / "helm" / "cwn" / "files" / "dashboard.json"


def queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_the_dashboard_covers_flow_lag_latency_dead_letters_member_health_and_resources():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "cwn-pipeline"
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["At a glance", "Flow", "Lag and latency", "Member delivery health", "Resources"]
    text = "\n".join(queries())
    for metric in (
        "cwn_consumer_lag_records",
        "cwn_end_to_end_latency_seconds_bucket",
        "cwn_deadlettered_total",
        "cwn_connector_circuit_state",
        "cwn_connector_deliveries_total",
        "process_cpu_seconds_total",
        "cwn_writer_process_cpu_seconds_total",
        "cwn_writer_process_resident_memory_bytes",
    ):
        assert metric in text
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_query_uses_exported_metrics():
    names = exported()
    for expr in queries():
        assert used(expr) <= names, (expr, used(expr) - names)
