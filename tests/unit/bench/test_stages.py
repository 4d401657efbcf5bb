import json

from typer.testing import CliRunner

from pipeline.bench.stages import PARTS, run_stages_suite
from pipeline.cli import app


def test_suite_reports_each_part_per_alert_and_what_one_core_can_do():
    result = run_stages_suite(members=60, alerts=400, batch_size=100, say=lambda _: None)
    assert result["suite"] == "stages" and result["alerts"] == 400
    parts = result["us_per_alert"]
    assert set(parts) == set(PARTS) and all(us > 0 for us in parts.values())
    assert abs(result["us_per_alert_total"] - sum(parts.values())) < 0.5
    assert abs(result["alerts_per_core_s"] * result["us_per_alert_total"] / 1e6 - 1) < 0.01
    assert result["deliveries_per_alert"] > 1, "sector intelligence fans out to its subscribers"


def test_fewer_members_fewer_deliveries_per_alert():
    small = run_stages_suite(members=20, alerts=300, batch_size=100, say=lambda _: None)
    large = run_stages_suite(members=400, alerts=300, batch_size=100, say=lambda _: None)
    assert small["deliveries_per_alert"] < large["deliveries_per_alert"]


def test_the_command_prints_the_suite_as_json():
    result = CliRunner().invoke(
        app, ["bench", "--suite", "stages", "--json", "--alerts", "200", "--members", "30"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["suite"] == "stages" and printed["members"] == 30 and printed["alerts"] == 200
