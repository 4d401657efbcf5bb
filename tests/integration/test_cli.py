"""The `cwn` command against the real broker, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pipeline.feeds import load_feeds
from pipeline.kafka import list_topics, read_topics
from pipeline.settings import Settings
from pipeline.topics import partner_raw_topic

pytestmark = pytest.mark.integration


def cwn_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `cwn` process on the test's broker and namespace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWN_") and k != "KAFKA_BOOTSTRAP"}
    env |= {"KAFKA_BOOTSTRAP": settings.bootstrap, "CWN_NAMESPACE": settings.namespace,
            "CWN_STATE_DIR": str(settings.state_dir), "CWN_PARTITIONS": str(settings.partitions)}  # fmt: skip
    return env | (extra or {})


def cwn(
    settings: Settings,
    *args: str,
    stdin: bytes | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    env = cwn_env(settings, env)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


def test_members_generate_import_list(settings: Settings, tmp_path: Path) -> None:
    generated = cwn(settings, "members", "generate", "--count", "40")
    assert generated.returncode == 0, generated.stderr
    path = tmp_path / "members.yaml"
    path.write_bytes(generated.stdout)
    imported = cwn(settings, "members", "import", str(path))
    assert imported.returncode == 0, imported.stderr
    assert orjson.loads(imported.stdout)["members"] == 40
    listed = cwn(settings, "members", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    members = orjson.loads(listed.stdout)
    assert isinstance(members, list) and len(members) == 40
    assert {"id", "name", "sectors", "constituency", "subscriptions"} <= set(members[0])


def test_import_refuses_an_invalid_directory_by_name(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("members:\n  - {id: a, name: A, constituency: {cidrs: [10.0.0.0/8]}}\n"
                    "  - {id: b, name: B, constituency: {cidrs: [10.1.0.0/16]}}\n")  # fmt: skip
    result = cwn(settings, "members", "import", str(path))
    assert result.returncode == 2
    assert b"10.1.0.0/16 of b overlaps 10.0.0.0/8 of a" in result.stderr


def test_example_directory_imports(settings: Settings) -> None:
    example = Path(__file__).parents[2] / "examples" / "members.yaml"
    result = cwn(settings, "members", "import", str(example))
    assert result.returncode == 0, result.stderr


def test_topics_ensure(settings: Settings) -> None:
    result = cwn(settings, "topics", "ensure")
    assert result.returncode == 0, result.stderr
    assert b"created 0" in result.stderr


def test_unknown_setting_is_refused(settings: Settings) -> None:
    env_result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "topics", "ensure"],
        env=dict(os.environ, CWN_PARTITONS="3"), capture_output=True, timeout=60,
    )  # fmt: skip
    assert env_result.returncode == 2
    assert b"CWN_PARTITONS" in env_result.stderr


def test_kafka_status_of_a_stopped_broker(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWN_") and k != "KAFKA_BOOTSTRAP"}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "kafka", "status"],
        env=env | {"CWN_STATE_DIR": str(settings.state_dir / "nothing"), "CWN_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert orjson.loads(result.stdout)["running"] is False


def test_demo_reports_nothing_lost(settings: Settings) -> None:
    result = cwn(
        settings.model_copy(update={"namespace": ""}), "demo", "--alerts", "5000", "--json", timeout=900
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    last = result.stdout.decode().strip().splitlines()[-1]
    report = orjson.loads(last)
    assert report["lost"] == 0
    assert report["ingested"] == 5000
    assert report["ingested"] == report["normalised"] + report["deadlettered"]
    assert report["normalised"] == report["unique"] + report["duplicates"]
    assert report["deadlettered"] == 50 and report["duplicates"] == 1500
    assert report["members"] == 1152 and report["deliveries"] > report["unique"]
    assert set(report) >= {"ingested", "normalised", "deadlettered", "duplicates", "unique", "deliveries",
                           "members", "lost", "seconds"}  # fmt: skip


def test_feeds_import_list_and_produce(settings: Settings, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    imported = cwn(settings, "feeds", "import", str(root / "feeds.yaml"))
    assert imported.returncode == 0, imported.stderr
    producers = {p for f in load_feeds((root / "feeds.yaml").read_text()) for p in f.producers}
    own_topics = {t for p in producers if (t := partner_raw_topic(settings, p))}
    assert orjson.loads(imported.stdout) == {
        "feeds": 9, "feeds_removed": 0, "partner_topics_created": len(own_topics)
    }  # fmt: skip
    assert own_topics <= set(list_topics(settings, settings.topic("cwn.alerts.raw.")))
    listed = cwn(settings, "feeds", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "abusech/urlhaus" in {f["id"] for f in orjson.loads(listed.stdout)}

    sample = root / "tests" / "samples" / "cef" / "firewall-and-ids.log"
    produced = cwn(
        settings, "produce", "--feed", "soc-partner/siem", "--producer", "siem-forwarder", str(sample)
    )
    assert produced.returncode == 0, produced.stderr
    summary = orjson.loads(produced.stdout)
    assert (summary["sent"], summary["acknowledged"], summary["failed"], summary["pending"]) == (5, 5, 0, 0)
    raw = read_topics(settings, [settings.topic("cwn.alerts.raw")])
    assert sorted(m.value() for m in raw) == sorted(sample.read_bytes().splitlines())
    assert {dict(m.headers())["producer"] for m in raw} == {b"siem-forwarder"}
    assert {dict(m.headers())["format"] for m in raw} == {b"cef"}

    own = cwn(settings, "produce", "--feed", "soc-partner/siem", "--producer", "siem-forwarder",
              "--own-topic", str(sample))  # fmt: skip
    assert own.returncode == 0, own.stderr
    mine = read_topics(settings, [partner_raw_topic(settings, "siem-forwarder")])
    assert sorted(m.value() for m in mine) == sorted(sample.read_bytes().splitlines())

    piped = cwn(
        settings,
        "produce",
        "--feed",
        "cert/alerts",
        "--producer",
        "cert-analysts",
        "--format",
        "alert-json",
        "-",
        stdin=b"",
    )
    assert piped.returncode == 0 and orjson.loads(piped.stdout)["sent"] == 0
    unsplittable = cwn(settings, "produce", "--feed", "x/y", "--producer", "p", "-", stdin=b"plain words")
    assert unsplittable.returncode == 2 and b"--format" in unsplittable.stderr
