"""The Helm chart, rendered by a real `helm` over every `ci/*-values.yaml` scenario and
validated offline against the Kubernetes schemas; what it configures must be real settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from connectors.settings import ConnectSettings
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "cwn"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
HELM = str(Path(sys.executable).parent / "helm")
KUBERNETES = "1.29.0"
CRDS = {"ServiceMonitor", "PrometheusRule"}


def helm(*args: str) -> subprocess.CompletedProcess:
    # scripts/tools.sh builds helm into the virtualenv (make install runs it).
    assert Path(HELM).exists(), "helm is missing: run `bash scripts/tools.sh`"
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=300)


def render(values: Path | None = None, *sets: str) -> list[dict]:
    args = ["template", "cwn", str(CHART), "--namespace", "cwn", "--kube-version", KUBERNETES]
    if values is not None:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    rendered = helm(*args)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
    return pod.get("containers", [])


@pytest.fixture(scope="module", params=SCENARIOS, ids=[p.name for p in SCENARIOS])
def manifests(request) -> list[dict]:
    return render(request.param)


@pytest.mark.parametrize("values", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_lint_is_clean(values):
    linted = helm("lint", "--strict", "--kube-version", KUBERNETES, str(CHART), "-f", str(values))
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_every_manifest_validates_against_kubernetes(manifests):
    for doc in manifests:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_prometheus_rule_is_the_checked_rule_file(manifests, tmp_path):
    rules = [d for d in manifests if d["kind"] == "PrometheusRule"]
    for rule in rules:
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(rule["spec"]))
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        source = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
        assert rule["spec"] == source


def test_monitoring_objects_when_enabled(manifests):
    kinds = {d["kind"] for d in manifests}
    for doc in manifests:
        if doc["kind"] == "ServiceMonitor":
            (endpoint,) = doc["spec"]["endpoints"]
            assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-dashboard"):
            assert json.loads(doc["data"]["cwn-pipeline.json"])["uid"] == "cwn-pipeline"
    assert "StatefulSet" in kinds and "Job" in kinds


def test_every_cwn_variable_is_a_real_setting(manifests):
    known = {f"CWN_{name.upper()}" for name in Settings.model_fields} | {
        f"CWN_CONNECT_{name.upper()}" for name in ConnectSettings.model_fields
    }
    for doc in manifests:
        for container in containers(doc):
            names = {e["name"] for e in container.get("env", [])}
            assert {n for n in names if n.startswith("CWN_")} <= known, names - known
            assert "KAFKA_BOOTSTRAP" in names


def test_containers_are_locked_down_and_pinned(manifests):
    for doc in manifests:
        for container in containers(doc):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
            assert context["capabilities"]["drop"] == ["ALL"]
            image = container["image"]
            assert not image.endswith(":latest") and ":" in image.rpartition("/")[2]


def test_the_import_job_runs_real_commands(manifests):
    for doc in manifests:
        if doc["kind"] != "Job":
            continue
        (container,) = containers(doc)
        for line in container["args"][0].strip().splitlines():
            command = line.split()[1:3]
            command = [c for c in command if not c.startswith("/")]
            shown = subprocess.run(
                [sys.executable, "-m", "pipeline.cli", *command, "--help"], capture_output=True, text=True
            )
            assert shown.returncode == 0, (line, shown.stderr)


def test_connectors_follow_the_values():
    docs = render(CHART / "ci" / "full-values.yaml")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert sorted(deployments) == [
        f"cwn-connect-{k}" for k in ("email", "file", "syslog", "taxii", "webhook")
    ]
    assert containers(deployments["cwn-connect-webhook"])[0]["args"] == ["connect", "webhook"]
    # One writer per store.
    assert deployments["cwn-connect-taxii"]["spec"]["strategy"]["type"] == "Recreate"
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert hpas["cwn-worker"]["spec"]["maxReplicas"] == 12  # never more workers than partitions
    assert "cwn-connect-webhook" in hpas and "cwn-connect-taxii" not in hpas
    image = containers(deployments["cwn-connect-webhook"])[0]["image"]
    assert image.endswith("@sha256:" + "0" * 64)


def test_sasl_and_tls_come_from_existing_secrets():
    docs = render(CHART / "ci" / "strimzi-values.yaml")
    worker = next(d for d in docs if d["kind"] == "StatefulSet")
    env = {e["name"]: e for e in containers(worker)[0]["env"]}
    assert env["CWN_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["CWN_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "cwn-worker", "key": "password"}
    assert env["CWN_SSL_CA_FILE"]["value"] == "/var/run/cwn/kafka-ca/ca.crt"
    job = next(d for d in docs if d["kind"] == "Job")
    job_env = {e["name"]: e for e in containers(job)[0]["env"]}
    assert job_env["CWN_SASL_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == "cwn-admin"


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("worker.replicaz=3", "replicaz"),
        ("image.tag=latest", "tag"),
        ("kafka.securityProtocol=SASL", "securityProtocol"),
        ("connectors.webhook.colour=blue", "colour"),
        ("pipeline.extraEnv.PATH=/tmp", "PATH"),
    ],
)
def test_the_schema_refuses_unknown_keys_and_bad_values(setting, complaint):
    rendered = helm(
        "template", "cwn", str(CHART), "-f", str(CHART / "ci" / "default-values.yaml"), "--set", setting
    )
    assert rendered.returncode != 0
    assert complaint in rendered.stderr


def test_sasl_without_a_secret_is_refused_by_name():
    rendered = helm("template", "cwn", str(CHART), "--kube-version", KUBERNETES)
    assert rendered.returncode != 0 and "kafka.sasl.existingSecret is required" in rendered.stderr
