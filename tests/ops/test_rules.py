"""The alert rules: valid for Prometheus, unit-tested with promtool, and about real metrics."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.ops.promql import exported, used

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "cwn" / "files" / "alerts.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> subprocess.CompletedProcess:
    # promtool comes with Debian's prometheus package, which scripts/system-deps.sh installs.
    assert Path(PROMTOOL).exists(), "promtool missing: run scripts/system-deps.sh (Debian: prometheus)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    written = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {written} rules found" in checked.stdout


def test_promtool_unit_tests_pass():
    tested = promtool("test", "rules", str(ROOT / "tests" / "ops" / "alerts.test.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_rule_uses_exported_metrics_and_has_a_runbook_and_a_test():
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    tests = (ROOT / "tests" / "ops" / "alerts.test.yaml").read_text()
    names = exported()
    for rule in rules:
        assert used(rule["expr"]) <= names, (rule["alert"], used(rule["expr"]) - names)
        runbook = ROOT / rule["annotations"]["runbook_url"]
        assert runbook.is_file(), runbook
        assert f"alertname: {rule['alert']}" in tests, rule["alert"]
