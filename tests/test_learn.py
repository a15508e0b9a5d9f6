"""Learning across sweeps end to end through the CLI: constraints on logged metrics, `refine`,
and `warm_start`. Real SQLite stores, real trial subprocesses; sweeps kept to a few points."""

from __future__ import annotations

from pathlib import Path

from conftest import PROJECT, mlflow_runs, optuna_trials, run_cli, write_config

CONSTRAINED = PROJECT / "constrained.py"


def tracking_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def optuna_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'sweeps' / 'optuna.db'}"


def output(result) -> str:
    return result.stdout + result.stderr


def by_role(runs: list, name: str) -> list:
    return [r for r in runs if r.data.tags.get("sweeper.role") == name]


def test_constrained_grid_best_is_the_best_feasible_trial(tmp_path):
    # score = x + y, latency = 10 x: the unconstrained best (x=3, y=20) is infeasible
    config = write_config(
        tmp_path,
        command=f"python {CONSTRAINED}",
        parameters={"x": [1, 2, 3], "y": [10, 20]},
        spec={"metric": "score", "direction": "maximize", "constraints": ["latency <= 20"]},
    )
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    runs = mlflow_runs(tracking_uri(tmp_path))
    trials = by_role(runs, "trial")
    assert len(trials) == 6
    for run in trials:
        expected = "true" if float(run.data.params["x"]) <= 2 else "false"
        assert run.data.tags["sweeper.feasible"] == expected, run.data.params
    (parent,) = by_role(runs, "parent")
    best = next(r for r in trials if r.data.params["x"] == "2" and r.data.params["y"] == "20")
    assert parent.data.tags["sweeper.best_run_id"] == best.info.run_id
    assert parent.data.metrics["score"] == 22
    status = run_cli("status", config, cwd=tmp_path)
    assert "best: score=22" in status.stdout, output(status)
    assert all(len(t.constraints) == 1 for t in optuna_trials(optuna_url(tmp_path)))


def test_a_trial_without_its_constraint_metric_fails_and_status_has_no_best(tmp_path):
    config = write_config(
        tmp_path,
        command=f"python {CONSTRAINED} latency=no",
        parameters={"x": [1], "y": [10]},
        max_retries=0,
        fail_fast=0,
        spec={"metric": "score", "direction": "maximize", "constraints": ["latency <= 20"]},
    )
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 1, output(result)
    assert "constraint metric 'latency'" in output(result)
    status = run_cli("status", config, cwd=tmp_path)
    assert "best: - (no feasible trial yet)" in status.stdout, output(status)
