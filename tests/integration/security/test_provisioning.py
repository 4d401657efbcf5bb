"""Provisioning through the CLI on the secured broker, and a connector runner as `cwn-connect`."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from connectors.kinds import FileKind
from connectors.metrics import create_connector_metrics
from connectors.runner import Runner
from connectors.secrets import SecretStore
from connectors.settings import ConnectSettings
from pipeline.control import DirectoryView, publish_members
from pipeline.directory import Member, Target
from pipeline.kafka import read_topics
from pipeline.security.acl import CONNECT, connect_grants, member_principal
from pipeline.security.provision import CredentialStore
from pipeline.topics import RECEIPTS, partner_raw_topic
from tests.integration.connectors.member_topics import put_deliveries
from tests.integration.security.conftest import as_principal
from tests.integration.security.test_isolation import authenticates
from tests.integration.test_cli import cwn_env
from tests.unit.connectors.deliveries import member_alert

pytestmark = pytest.mark.integration


def run_cwn(env, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True,
                          input=stdin, timeout=300)  # fmt: skip


def test_imports_provision_members_and_producers(admin, secure_broker, tmp_path):
    env = cwn_env(admin, secure_broker.client_env())
    directory = tmp_path / "members.yaml"
    directory.write_text(yaml.safe_dump({"members": [{"id": f"p{i}", "name": f"P{i}"} for i in range(5)]}))
    imported = run_cwn(env, "members", "import", str(directory))
    assert imported.returncode == 0, imported.stderr.decode()[-2000:]
    assert orjson.loads(imported.stdout)["credentials"] == 5
    store = CredentialStore(admin.state_dir / "credentials")
    p4 = as_principal(admin, member_principal("p4"), store.get(member_principal("p4")))
    assert authenticates(p4)

    directory.write_text(yaml.safe_dump({"members": [{"id": f"p{i}", "name": f"P{i}"} for i in range(4)]}))
    pruned = run_cwn(env, "members", "import", "--prune", str(directory))
    assert pruned.returncode == 0, pruned.stderr.decode()[-2000:]
    assert orjson.loads(pruned.stdout)["credentials_revoked"] == 1
    assert not authenticates(p4)
    p0 = as_principal(admin, member_principal("p0"), store.get(member_principal("p0")))
    assert authenticates(p0)

    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": [{"id": "cert/alerts", "format": "alert-json",
                                                "producers": ["cert-analysts"]}]}))  # fmt: skip
    feeds_imported = run_cwn(env, "feeds", "import", str(feeds))
    assert feeds_imported.returncode == 0, feeds_imported.stderr.decode()[-2000:]
    assert orjson.loads(feeds_imported.stdout)["producer_credentials"] == 1
    shown = run_cwn(env, "feeds", "credentials", "cert-analysts")
    creds = orjson.loads(shown.stdout)
    assert creds["topic"] == partner_raw_topic(admin, "cert-analysts")

    as_partner = env | {"CWN_SASL_USERNAME": creds["username"], "CWN_SASL_PASSWORD": creds["password"]}
    alert = orjson.dumps(member_alert(1) | {"feed": {"provider": "cert", "name": "alerts"}})
    produced = run_cwn(as_partner, "produce", "--feed", "cert/alerts", "--producer", "cert-analysts",
                       "--format", "alert-json", "-", stdin=alert + b"\n")  # fmt: skip
    assert produced.returncode == 0, produced.stderr.decode()[-2000:]
    assert [m.value() for m in read_topics(admin, [creds["topic"]])] == [alert]


def test_a_connector_runs_as_its_own_least_privileged_principal(admin, provisioner, tmp_path):
    members = [Member(id=f"f{i}", name=f"F{i}", targets=(Target(id="out", type="file", endpoint=f"f{i}"),))
               for i in range(3)]  # fmt: skip
    publish_members(admin, members)
    written = put_deliveries(admin, [m.id for m in members], 5, rule="inside")
    keys = [key for pairs in written.values() for key, _ in pairs]
    connect = as_principal(admin, CONNECT, provisioner.ensure_user(CONNECT))
    provisioner.grant(connect_grants(admin))
    settings = ConnectSettings(file_root=tmp_path / "outbox", linger_seconds=0.01, commit_seconds=0.2)
    registry = CollectorRegistry()
    metrics = create_connector_metrics(registry)

    async def main():
        view = DirectoryView(connect).start()
        assert view.wait_ready(60)
        runner = Runner(FileKind(settings, SecretStore(None)), connect, settings, metrics, view)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        for _ in range(600):
            delivered = registry.get_sample_value(
                "cwn_connector_deliveries_total", {"connector": "file", "outcome": "delivered"}
            )
            if delivered == len(keys) and not runner._outbox and not runner.book.committable():
                break
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 60)
        view.stop()

    asyncio.run(main())
    written = [
        orjson.loads(line)["key"]
        for path in (tmp_path / "outbox").glob("f*/*")
        for line in path.read_bytes().splitlines()
    ]
    assert sorted(written) == sorted(keys)
    receipts = read_topics(admin, [admin.topic(RECEIPTS)])
    assert sorted(orjson.loads(m.value())["key"] for m in receipts) == sorted(keys)
