"""`cwn parse` as a partner runs it: output streams and exit codes (no broker needed)."""

import subprocess
import sys

import orjson
import pytest

from tests.unit.parsers.samples import ROOT, SAMPLES

NOW = "2026-11-29T12:00:00+0000"


def parse(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.cli", "parse", "--feeds", str(ROOT / "feeds.yaml"), *args]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120, cwd=ROOT)


def test_a_clean_file_exits_0_with_alerts_on_stdout():
    done = parse(
        "--feed", "shadowserver/drone", "--now", NOW, str(SAMPLES / "intelmq/shadowserver-and-abusech.jsonl")
    )
    assert done.returncode == 0, done.stderr
    alerts = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [a["type"] for a in alerts] == [
        "infected-system",
        "c2-server",
        "phishing",
        "vulnerable-system",
        "undetermined",
    ]
    assert all(len(a["fingerprint"]) == 32 and a["feed"]["provider"] == "shadowserver" for a in alerts)
    assert done.stderr == b""


def test_rejections_exit_3_one_json_line_each_on_stderr():
    done = parse("--feed", "abusech/urlhaus", "--now", NOW, str(SAMPLES / "csv/urlhaus-recent.csv"))
    assert done.returncode == 3
    assert len(done.stdout.splitlines()) == 2
    rejections = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert [(r["line"], r["field"]) for r in rejections] == [(7, "source.url"), (8, "row")]
    assert rejections[1]["reason"] == "expected 9 columns, got 8"


def test_items_of_a_document_are_located():
    done = parse("--format", "stix2", "--now", NOW, str(SAMPLES / "stix2/campaign-bundle.json"))
    assert done.returncode == 3
    (rejection,) = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert (rejection["record"], rejection["item"], rejection["field"]) == (1, "objects[12]", "pattern")
    assert len(done.stdout.splitlines()) == 5


def test_standard_input_and_sniffed_format():
    eve = (SAMPLES / "suricata-eve/mixed-sensor.jsonl").read_bytes()
    done = parse("--now", NOW, "-", stdin=eve)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "yaml", "-"], "unknown format"),
        (["--format", "csv", "-"], "csv needs a feed"),
        (["--feed", "no/such", "-"], "is not declared"),
        (["--feed", "abusech/urlhaus", "--format", "cef", "-"], "declared as csv"),
        (["--format", "cef", "/no/such/file"], "No such file"),
    ],
)
def test_usage_errors_exit_2(args, message):
    done = parse(*args, stdin=b"")
    assert done.returncode == 2
    assert message in done.stderr.decode().replace("\n", " ")
