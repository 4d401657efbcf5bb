"""A real Prometheus server scrapes two workers through a demo run; the conservation law and
latency quantiles are checked in PromQL, and the alert rules and dashboard queries run on it."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.demo.feed import SampleFeed
from pipeline.demo.run import free_port, produce_feed, wait_settled
from pipeline.directory import Directory, generate_members
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "cwn" / "files" / "alerts.yaml"
DASHBOARD = ROOT / "helm" / "cwn" / "files" / "dashboard.json"


class Prometheus:
    """Debian's Prometheus server on loopback, scraping the given targets every second."""

    def __init__(self, directory: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.directory = directory
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "cwn-worker", "static_configs": [{"targets": targets}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        assert Path(binary).exists(), "prometheus is missing: run scripts/system-deps.sh"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "prometheus.log").open("wb"),
        )

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, expected: float, timeout: float = 60) -> float | None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.value(expr)
            except OSError:
                value = None  # still starting
            if value == expected:
                return value
            time.sleep(0.5)
        return value

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_conservation_and_latency_in_promql(settings, pipeline: Pipeline, tmp_path):
    directory = Directory(generate_members(100, seed=21))
    pipeline.import_members(directory)
    workers = [pipeline.start_worker("w0"), pipeline.start_worker("w1")]
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{w.settings.metrics_port}" for w in workers])
    try:
        feed = SampleFeed(list(directory), seed=8, duplicate_ratio=0.2, bad_ratio=0.02,
                          max_message_bytes=settings.max_message_bytes)  # fmt: skip
        records = feed.records(3000)
        produce_feed(settings, records)
        counts = wait_settled(settings, workers, directory, len(records), timeout=300)
        assert counts.lost == 0, counts.as_dict()

        ingested = prometheus.wait_for('sum(cwn_records_in_total{stage="normalise"})', 3000)
        assert ingested == 3000
        assert prometheus.wait_for("sum(cwn_raw_records_total)", 3000) == 3000
        # ingested = normalised + dead-lettered, raw records and alerts alike:
        unaccounted = 'sum(cwn_records_in_total{stage="normalise"}) - sum(cwn_raw_records_total)'
        assert prometheus.value(unaccounted) == 0
        assert prometheus.value('sum(cwn_raw_records_total{outcome="rejected"})') == counts.rejected == 60
        assert prometheus.value("sum(cwn_deadlettered_total)") == counts.deadlettered
        # normalised = unique + duplicates (+ updates):
        assert (
            prometheus.value(
                'sum(cwn_records_out_total{stage="normalise"})'
                " - sum(cwn_duplicates_total)"
                ' - sum(cwn_records_in_total{stage="route"})'
            )
            == 0
        )
        assert prometheus.value("sum(cwn_duplicates_total)") == counts.duplicates > 0
        # every routed (alert, member) pair is on a member topic:
        assert prometheus.value('sum(cwn_records_out_total{stage="route"})') == counts.deliveries > 0
        assert prometheus.value("sum(cwn_end_to_end_latency_seconds_count)") == counts.deliveries

        buckets = "sum by (le) (cwn_end_to_end_latency_seconds_bucket)"
        p50 = prometheus.value(f"histogram_quantile(0.5, {buckets})")
        p99 = prometheus.value(f"histogram_quantile(0.99, {buckets})")
        assert p50 is not None and p99 is not None and math.isfinite(p99)
        assert 0 < p50 <= p99 <= 300

        assert prometheus.value('sum(up{job="cwn-worker"})') == 2
        assert prometheus.value("sum(cwn_worker_ready)") == 2
        # Each worker exports its own process metrics and those of its member-topic writer process.
        assert prometheus.value('count(process_resident_memory_bytes{job="cwn-worker"})') == 2
        assert prometheus.value("count(cwn_writer_process_resident_memory_bytes)") == 2
        assert (prometheus.value("min(cwn_writer_process_cpu_seconds_total)") or 0) > 0
        # Lag is measured every 10 s, per partition, by both workers; the settled pipeline has none.
        assert prometheus.wait_for("count(cwn_consumer_lag_records)", 2 * 2 * settings.partitions, 60)
        assert prometheus.wait_for("sum(cwn_consumer_lag_records)", 0, 60) == 0

        # The rules evaluate on the real series; none fires on a healthy run.
        rules = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{prometheus.port}/api/v1/rules", timeout=10).read()
        )
        loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
        written = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
        assert sorted(r["name"] for r in loaded) == sorted(written)
        assert all(r["health"] == "ok" for r in loaded), loaded
        assert prometheus.query('ALERTS{alertstate="firing"}') == []

        # Every dashboard query runs; the flow panels (the two top rows) and every query of the
        # resource panels show data.
        board = json.loads(DASHBOARD.read_text())
        flow_rows_end = next(p["gridPos"]["y"] for p in board["panels"] if p["title"] == "Lag and latency")
        resources_start = next(p["gridPos"]["y"] for p in board["panels"] if p["title"] == "Resources")
        for panel in board["panels"]:
            for n, target in enumerate(panel.get("targets", [])):
                result = prometheus.query(target["expr"])
                row = panel["gridPos"]["y"]
                if (n == 0 and row < flow_rows_end) or row > resources_start:
                    assert result, f"panel {panel['title']!r} query {n} shows nothing on a healthy run"
    finally:
        prometheus.stop()
