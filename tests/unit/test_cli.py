"""Command-line checks that need no broker."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipeline.cli import app


@pytest.mark.parametrize("loads", ["0,50", "50,120", "half", ""])
def test_bench_refuses_latency_levels_that_are_not_percentages(loads: str) -> None:
    result = CliRunner().invoke(app, ["bench", "--loads", loads])
    assert result.exit_code == 2
    assert "--loads" in result.output


@pytest.mark.parametrize("rates", ["0", "60,-1", "fast", "60,"])
def test_bench_refuses_fixed_rates_that_are_not_positive_numbers(rates: str) -> None:
    result = CliRunner().invoke(app, ["bench", "--rates", rates])
    assert result.exit_code == 2
    assert "--rates" in result.output


def test_bench_refuses_a_negative_rebalance_phase() -> None:
    result = CliRunner().invoke(app, ["bench", "--rebalance-seconds", "-1"])
    assert result.exit_code == 2
    assert "--rebalance-seconds" in result.output
