"""Console lines show floats at 4 significant digits; MLflow params and the study keep full values."""

from __future__ import annotations

import re

from conftest import mlflow_runs, optuna_trials, run_cli, write_config

from mlflow_sweeper.display import shown_params, shown_value


def test_significant_digits_counts_what_it_should():
    assert significant_digits("x=0.0002703522821774034, best 1.006") == [16, 4]


def test_floats_are_shown_at_four_significant_digits():
    assert shown_value(0.0002703522821774034) == "0.0002704"
    assert shown_value(1234.5678) == "1235"
    assert shown_value(-0.0) == "0"  # a metric of -0.0 is not shown as "-0"
    assert shown_value(64) == "64"
    assert shown_value("relu") == "relu"
    assert shown_value(True) == "True"
    assert shown_params({"lr": 0.0002703522821774034, "act": "relu", "hidden": 64}) == (
        "lr=0.0002704, act=relu, hidden=64"
    )


DECIMAL = re.compile(r"(?<=[= ])-?(\d+\.\d+)(?:e[-+]?\d+)?")


def significant_digits(line: str) -> list[int]:
    return [len(number.replace(".", "").lstrip("0")) for number in DECIMAL.findall(line)]


def test_console_lines_are_short_and_the_stores_keep_full_values(tmp_path):
    config = write_config(
        tmp_path,
        algorithm="random",
        max_trials=2,
        seed=3,
        parameters={"x": {"low": 0.000123456789, "high": 0.1, "log": True}, "y": 1.0},
    )
    result = run_cli("sweep", config, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = [
        line for line in output.splitlines() if "started" in line or "finished" in line or "best" in line
    ]
    assert any("x=" in line for line in lines), output
    assert all(digits <= 4 for line in lines for digits in significant_digits(line)), output

    trials = optuna_trials(f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}")
    full = {repr(t.params["x"]) for t in trials}
    assert all(len(value) > 8 for value in full), full  # the study keeps every digit
    params = {
        r.data.params["x"]
        for r in mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
        if r.data.tags.get("sweeper.role") == "trial"
    }
    assert params == full, (params, full)
