"""`cwn connect` as an operator runs it: a real process on the real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson
import pytest

from pipeline.control import publish_members
from pipeline.directory import Member, Target
from tests.integration.connectors.member_topics import put_deliveries
from tests.integration.test_cli import cwn, cwn_env

pytestmark = pytest.mark.integration


def test_list_names_every_connector(settings):
    listed = cwn(settings, "connect", "--list")
    assert listed.returncode == 0
    assert [line.split("\t")[0] for line in listed.stdout.decode().splitlines()] == [
        "webhook",
        "syslog",
        "email",
        "taxii",
        "file",
    ]


def test_unknown_connector_and_unknown_setting_are_refused_by_name(settings):
    unknown = cwn(settings, "connect", "pigeon")
    assert unknown.returncode == 2 and b"pigeon" in unknown.stderr
    typo = cwn(settings, "connect", "file", env={"CWN_CONNECT_RETRY_BASE": "1"})
    assert typo.returncode == 2 and b"CWN_CONNECT_RETRY_BASE" in typo.stderr


def test_check_names_each_target_that_cannot_be_served(settings, tmp_path):
    publish_members(
        settings,
        [
            Member(
                id="m1",
                name="One",
                targets=(
                    Target(id="hook", type="webhook", endpoint="https://h.example/x", secret_ref="m1-hook"),
                ),
            ),
            Member(
                id="m2",
                name="Two",
                targets=(Target(id="hook", type="webhook", endpoint="https://h.example/y"),),
            ),
        ],
    )
    checked = cwn(settings, "connect", "webhook", "--check", env={"CWN_CONNECT_SECRETS_DIR": str(tmp_path)})
    assert checked.returncode == 1
    text = checked.stderr.decode()
    assert "member m1 target hook: secret 'm1-hook' not found" in text
    assert "member m2 target hook: a webhook target needs secret_ref" in text
    (tmp_path / "m1-hook").write_text("not base64 at all!")
    checked = cwn(settings, "connect", "webhook", "--check", env={"CWN_CONNECT_SECRETS_DIR": str(tmp_path)})
    assert "is not a Standard Webhooks secret" in checked.stderr.decode()
    assert "not base64 at all" not in checked.stderr.decode()


def test_the_file_connector_process_delivers_and_stops_cleanly(settings, tmp_path):
    members = [
        Member(id=f"m{i}", name=f"M{i}", targets=(Target(id="out", type="file", endpoint=f"m{i}"),))
        for i in range(3)
    ]
    publish_members(settings, members)
    written = put_deliveries(settings, [m.id for m in members], 10, rule="inside")
    keys = [key for pairs in written.values() for key, _ in pairs]
    root = tmp_path / "outbox"
    env = cwn_env(settings, {"CWN_CONNECT_FILE_ROOT": str(root), "CWN_CONNECT_LINGER_SECONDS": "0.01"})
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "connect", "file"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        written: list[str] = []
        deadline = time.monotonic() + 120
        while len(written) < len(keys) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            written = [
                orjson.loads(line)["key"]
                for path in root.glob("m*/*.jsonl*")
                for line in path.read_bytes().splitlines()
            ]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert sorted(written) == sorted(keys), stderr.decode()[-2000:]
    assert process.returncode == 0, stderr.decode()[-2000:]
