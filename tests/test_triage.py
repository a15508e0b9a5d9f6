"""Failure triage end to end: an out-of-memory log or a non-finite objective makes a point
infeasible (one attempt, tagged, exit 0); an ordinary failure is still retried; a missing metric
and a usage error are not retried and say what to fix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import mlflow_runs, optuna_trials, run_cli, write_config

EPOCHS = Path(__file__).resolve().parent / "training" / "epochs.py"


def sweep(tmp_path: Path, behave: str, *extra: str, **keys):
    keys.setdefault("parameters", {"x": [1], "epochs": 1, "behave": behave})
    config = write_config(tmp_path, command=f"python {EPOCHS}", max_retries=2, **keys)
    return run_cli("sweep", config, *extra, cwd=tmp_path)


def trial_runs(tmp_path: Path) -> list:
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", deleted=True)
    return [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]


def optuna(tmp_path: Path) -> list:
    return optuna_trials(f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}")


def test_out_of_memory_is_infeasible_not_retried_and_exits_0(tmp_path):
    result = sweep(tmp_path, "oom")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = trial_runs(tmp_path)
    assert len(runs) == 1, "an out-of-memory point was retried"
    tag = runs[0].data.tags["sweeper.infeasible"]
    assert "CUDA out of memory" in tag and not tag.startswith("infeasible"), tag  # the reason itself
    assert runs[0].info.status == "FAILED"
    trials = optuna(tmp_path)
    assert [t.state.name for t in trials] == ["FAIL"] and "infeasible" in trials[0].user_attrs
    assert "infeasible" in result.stdout + result.stderr
    # `status` tells infeasible points from failures; `--retry-failed` says it leaves them
    config = tmp_path / "sweep.yaml"
    status = run_cli("status", config, cwd=tmp_path)
    assert "1 failed (1 infeasible)" in status.stdout, status.stdout + status.stderr
    again = run_cli("sweep", config, "--retry-failed", cwd=tmp_path)
    said = again.stdout + again.stderr
    assert again.returncode == 0 and "1 infeasible point(s) not retried (trials 0)" in said, said
    assert len(trial_runs(tmp_path)) == 1


@pytest.mark.parametrize("behave", ["nan", "inf"])
def test_a_non_finite_objective_is_infeasible(tmp_path, behave):
    """An infinity too, which MLflow's SQL store keeps as the largest float."""
    result = sweep(tmp_path, behave)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = trial_runs(tmp_path)
    shown = {"nan": "is NaN", "inf": "is inf"}[behave]
    assert len(runs) == 1 and shown in runs[0].data.tags["sweeper.infeasible"]
    assert [t.state.name for t in optuna(tmp_path)] == ["FAIL"]


def test_a_failed_run_that_logged_a_nan_objective_is_infeasible(tmp_path):
    """A training loop that aborts on a NaN loss exits 1: its point is infeasible all the same."""
    result = sweep(tmp_path, "nan_fail", fail_fast=0)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = trial_runs(tmp_path)
    assert len(runs) == 1, "a point whose objective was NaN was retried"
    assert runs[0].data.tags["sweeper.infeasible"] == "the metric 'score' is NaN"
    assert [t.state.name for t in optuna(tmp_path)] == ["FAIL"]


@pytest.mark.parametrize(
    "patterns", [None, [r"epochs\.py", "working directory"]], ids=["default", "matching-the-header"]
)
def test_an_ordinary_failure_is_still_retried(tmp_path, patterns):
    """Only the trial's own output is triaged: the command line the log starts with (its script,
    its parameters) and its working directory say nothing about how it ended."""
    keys = {} if patterns is None else {"infeasible_when": patterns}
    result = sweep(tmp_path, "fail", fail_fast=0, **keys)
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(trial_runs(tmp_path)) == 3  # 1 + max_retries
    assert all("sweeper.infeasible" not in r.data.tags for r in trial_runs(tmp_path))


@pytest.mark.extended  # the patterns themselves: test_device_rules.py, in process
def test_infeasible_patterns_can_be_turned_off(tmp_path):
    result = sweep(tmp_path, "oom", fail_fast=0, infeasible_when=[])
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(trial_runs(tmp_path)) == 3


def test_a_missing_metric_fails_at_once_naming_what_was_logged(tmp_path):
    result = sweep(tmp_path, "other_metric", spec={"direction": "maximize", "metric": "val_accuracy"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(trial_runs(tmp_path)) == 1, "a run that never logs the metric was retried"
    output = result.stdout + result.stderr
    assert "did you mean 'val/accuracy'?" in output and "'loss'" in output


def test_a_usage_error_stops_the_sweep_naming_the_refused_parameter(tmp_path):
    result = sweep(
        tmp_path, "usage", parameters={"x": [1, 2, 3, 4], "behave": "usage"}, fail_fast=0
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "--hiden 64" in output and "run again to resume" in output
    assert len(trial_runs(tmp_path)) == 1, "every trial was tried though the script refuses its arguments"
    states = Counter(t.state.name for t in optuna(tmp_path))
    assert states["WAITING"] == 1  # resumable: the point keeps its attempts
