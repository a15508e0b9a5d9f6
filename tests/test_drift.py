"""Config drift: a stored sweep's search space, algorithm and objective
are fixed under its identity; only the budget and the retry and timeout settings may change.

A small real sweep (command mode, 2-point grid) is run once per module; each case works on its
own copy of that directory (every path in the config is relative to it, so the copy is a sweep
of its own). A refused change must exit 2, say what changed and how to proceed, and leave both
SQLite stores byte-for-byte as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import mlflow_runs, optuna_trials, run_cli, write_config

GRID = {"x": [1, 2], "y": 10}


def mlflow_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def optuna_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'sweeps' / 'optuna.db'}"


def dump(db: Path) -> list[str]:
    """The whole database as SQL statements, to compare before and after."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def listing(root: Path) -> set[str]:
    return {str((Path(d) / n).relative_to(root)) for d, dirs, files in os.walk(root) for n in dirs + files}


def state(directory: Path) -> dict:
    return {
        "mlflow": dump(directory / "mlflow.db"),
        "optuna": dump(directory / "sweeps" / "optuna.db"),
        "files": listing(directory),
    }


def trial_summary(directory: Path) -> tuple[list, list]:
    runs = mlflow_runs(mlflow_uri(directory), deleted=True)
    parents = [r for r in runs if r.data.tags.get("sweeper.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]
    return parents, trials


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    """A finished 2-point grid sweep; its config is `sweep.yaml` in the returned directory."""
    directory = tmp_path_factory.mktemp("drift-base")
    config = write_config(directory, parameters=GRID)
    result = run_cli("sweep", config, cwd=directory)
    assert result.returncode == 0, result.stderr
    parents, trials = trial_summary(directory)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.params["x"] for r in trials) == ["1", "2"]
    assert [t.state.name for t in optuna_trials(optuna_uri(directory))] == ["COMPLETE"] * 2
    return directory


@pytest.fixture
def sweep_copy(finished_sweep, tmp_path) -> Path:
    directory = tmp_path / "sweep"
    shutil.copytree(finished_sweep, directory)
    return directory


DRIFT = {
    # name: (config changes, words the message must contain besides the how-to-proceed advice)
    "grid-values": ({"parameters": {"x": [1, 3], "y": 10}}, ("x: values [1, 2] -> [1, 3]",)),
    "added-parameter": ({"parameters": {**GRID, "z": [0, 1]}}, ("parameter 'z' added",)),
    "renamed-parameter": ({"parameters": {"xx": [1, 2], "y": 10}}, ("parameter 'x' is now 'xx'",)),
    "algorithm": ({"algorithm": "random", "max_trials": 2}, ("algorithm 'grid' -> 'random'",)),
    "metric": ({"spec": {"direction": "maximize", "metric": "loss"}}, ("metric 'score' -> 'loss'",)),
    "direction": (
        {"spec": {"direction": "minimize", "metric": "score"}},
        ("direction 'maximize' -> 'minimize'",),
    ),
    # equal in Python, not as the trial is passed them (`True`, `10.0`)
    "grid-int-to-bool": ({"parameters": {"x": [True, 2], "y": 10}}, ("x: values [1, 2] -> [true, 2]",)),
    "fixed-int-to-float": ({"parameters": {"x": [1, 2], "y": 10.0}}, ("y: value 10 -> 10.0",)),
}


@pytest.mark.parametrize("name", list(DRIFT))
def test_drift_is_refused_and_writes_nothing(name, sweep_copy):
    changes, words = DRIFT[name]
    before = state(sweep_copy)
    config = write_config(sweep_copy, **{"parameters": GRID, **changes})
    result = run_cli("sweep", config, cwd=sweep_copy)
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit code {result.returncode}, expected 2:\n{output}"
    assert "Traceback" not in output, output

    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, "expected exactly one message:\n" + output
    message = lines[0]
    assert str(config) in message, message
    assert "exp/s1" in message, f"the message does not name the sweep: {message}"
    for word in words:
        assert word in message, f"{word!r} (what changed) not in the message: {message}"
    assert "sweep_name" in message, f"the message does not suggest a new sweep_name: {message}"
    assert "{'axes'" not in message and "differs" not in message, f"internals in the message: {message}"
    assert "delete" in message, f"the message does not suggest deleting the sweep first: {message}"

    after = state(sweep_copy)
    assert after["files"] == before["files"], "files created or removed"
    assert after["optuna"] == before["optuna"], "the Optuna storage changed"
    assert after["mlflow"] == before["mlflow"], "the MLflow storage changed"
    parents, trials = trial_summary(sweep_copy)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 2


ALLOWED = {
    "more-budget": {"max_trials": 10},  # a grid stays at its size
    "max_retries": {"max_retries": 3},
    "trial_timeout": {"trial_timeout": 120},
    "stale_after": {"stale_after": 60},
}


@pytest.mark.parametrize("name", list(ALLOWED))
def test_allowed_change_is_accepted(name, sweep_copy):
    parents_before, trials_before = trial_summary(sweep_copy)
    config = write_config(sweep_copy, parameters=GRID, **ALLOWED[name])
    result = run_cli("sweep", config, cwd=sweep_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

    parents, trials = trial_summary(sweep_copy)
    assert [p.info.run_id for p in parents] == [p.info.run_id for p in parents_before]
    assert parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_id for r in trials) == sorted(r.info.run_id for r in trials_before)
    assert [t.state.name for t in optuna_trials(optuna_uri(sweep_copy))] == ["COMPLETE"] * 2
    # the parent stores the config the sweep runs under now (its params stay the first one's)
    import mlflow

    parent = parents[0]
    stored = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep/{config.name}")
    assert stored == config.read_text()
    digest = parent.data.tags["sweeper.config_digest"]
    assert digest != parents_before[0].data.tags.get("sweeper.config_digest")
    assert "changed where it may on resume: the parent run's sweep/ artifact now holds" in result.stderr
    again = run_cli("sweep", config, cwd=sweep_copy)
    assert again.returncode == 0 and "config changed" not in again.stderr, again.stderr
    changed = write_config(sweep_copy, parameters=GRID, **ALLOWED[name], fail_fast=5)
    quiet = run_cli("sweep", changed, "--quiet", cwd=sweep_copy)  # only the summary
    assert quiet.returncode == 0 and "config changed" not in quiet.stderr, quiet.stderr


def test_a_comment_or_the_layout_of_a_config_is_no_change(sweep_copy):
    """What the config says is compared, not its text: the parent keeps the config it stores."""
    import yaml

    config = write_config(sweep_copy, parameters=GRID)
    said = yaml.safe_load(config.read_text())
    digest = trial_summary(sweep_copy)[0][0].data.tags["sweeper.config_digest"]
    reordered = yaml.safe_dump(dict(reversed(said.items())), sort_keys=False)
    config.write_text("# tried after the first look\n" + reordered)
    result = run_cli("sweep", config, cwd=sweep_copy)
    assert result.returncode == 0 and "config changed" not in result.stderr, result.stderr
    assert trial_summary(sweep_copy)[0][0].data.tags["sweeper.config_digest"] == digest, "not stored again"


def test_a_config_resumed_under_another_file_name_replaces_the_one_stored(sweep_copy):
    """The parent holds one config: a copy named otherwise, with more budget, replaces the first
    file's content under its name, instead of standing beside it."""
    import mlflow

    first = write_config(sweep_copy, parameters=GRID)
    renamed = write_config(sweep_copy, name="more.yaml", parameters=GRID, max_trials=10)
    result = run_cli("sweep", renamed, cwd=sweep_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    parent = trial_summary(sweep_copy)[0][0]
    stored = mlflow.artifacts.list_artifacts(f"{parent.info.artifact_uri}/sweep")
    assert [Path(entry.path).name for entry in stored] == [first.name]
    assert mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep/{first.name}") == renamed.read_text()


def sweep_ok(config: Path, directory: Path) -> None:
    result = run_cli("sweep", config, cwd=directory)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"exit code {result.returncode}:\n{output}"
    assert "Traceback" not in output, output


@pytest.mark.extended
def test_raising_the_budget_of_a_random_sweep_runs_more_trials(tmp_path):
    space = {"x": {"low": 0.0, "high": 1.0}, "y": 10}
    config = write_config(tmp_path, parameters=space, algorithm="random", max_trials=2, seed=0)
    sweep_ok(config, tmp_path)
    parents, trials = trial_summary(tmp_path)
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id, first_trials = parents[0].info.run_id, {r.info.run_id for r in trials}

    config = write_config(tmp_path, parameters=space, algorithm="random", max_trials=4, seed=0)
    sweep_ok(config, tmp_path)
    parents, trials = trial_summary(tmp_path)
    assert [p.info.run_id for p in parents] == [parent_id], "the same single parent run"
    assert parents[0].info.status == "FINISHED"
    assert len(trials) == 4 and first_trials < {r.info.run_id for r in trials}
    assert all(r.info.status == "FINISHED" and r.info.lifecycle_stage == "active" for r in trials)
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in trials)
    assert sorted(int(r.data.tags["sweeper.trial"]) for r in trials) == [0, 1, 2, 3]
    studied = optuna_trials(optuna_uri(tmp_path))
    assert [t.state.name for t in studied] == ["COMPLETE"] * 4
    assert len({t.params["x"] for t in studied}) == 4, "four distinct random draws"
    assert {t.user_attrs["mlflow_run_id"] for t in studied} == {r.info.run_id for r in trials}

    # The same budget again: nothing new to run.
    sweep_ok(config, tmp_path)
    assert len(optuna_trials(optuna_uri(tmp_path))) == 4
    assert len(trial_summary(tmp_path)[1]) == 4


def test_only_the_parameters_are_compared_with_their_types():
    """A trial is passed a parameter as written (`10` or `10.0`); a sampler option is a number."""
    from mlflow_sweeper.coordination.drift import describe_drift, same_definition

    options = ({"sampler_options": {"prior_weight": 1}}, {"sampler_options": {"prior_weight": 1.0}})
    assert same_definition(*options) and describe_drift(*options) == []
    fixed = ({"parameters": {"fixed": {"y": 10}}}, {"parameters": {"fixed": {"y": 10.0}}})
    assert not same_definition(*fixed) and describe_drift(*fixed) == ["y: value 10 -> 10.0"]


def test_status_of_a_changed_config_says_how_it_differs_from_the_sweep(sweep_copy):
    """`status` reads the sweep through the config it is given: changed, its counts are against
    the new config (3 done of a budget of 1): it says how the config differs, as an agent would."""
    config = write_config(sweep_copy, parameters={"x": [1], "y": 10})
    result = run_cli("status", config, cwd=sweep_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "this config differs from the sweep's: x: values [1, 2] -> [1]" in result.stdout, result.stdout
    data = json.loads(run_cli("status", config, "--json", cwd=sweep_copy).stdout)["sweeps"][0]
    assert data["config_changed"] == ["x: values [1, 2] -> [1]"]
    unchanged = write_config(sweep_copy, parameters=GRID)
    data = json.loads(run_cli("status", unchanged, "--json", cwd=sweep_copy).stdout)["sweeps"][0]
    assert data["config_changed"] == []
    assert "differs" not in run_cli("status", unchanged, cwd=sweep_copy).stdout


def test_status_of_a_sweep_whose_budget_was_lowered_says_so(tmp_path):
    """What ran stays done when max_trials is lowered on resume; status does not show `4/3 done`."""
    space = {"x": {"low": 0.0, "high": 1.0}}
    config = write_config(tmp_path, parameters=space, algorithm="random", max_trials=2, seed=0)
    sweep_ok(config, tmp_path)
    config = write_config(tmp_path, parameters=space, algorithm="random", max_trials=1, seed=0)
    sweep_ok(config, tmp_path)
    assert len(optuna_trials(optuna_uri(tmp_path))) == 2, "nothing new ran"
    status = run_cli("status", config, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    said = "points: 2 done (max_trials is 1: lowered after they ran), 0 running"
    assert said in status.stdout, status.stdout


def test_a_configs_digest_is_of_what_it_says():
    from mlflow_sweeper.record.tags import config_digest

    said = config_digest("experiment: e\nparameters: {lr: 1e-3}\nwarm_start: [{sweep: e/s}]\n")
    assert config_digest("# a note\nparameters:\n  lr: 0.001\nexperiment: e\n") == said
    assert config_digest("experiment: e\nparameters: {lr: 0.01}\n") != said
    assert config_digest("password: ***\n") == config_digest("password: ***\n")  # read as written
    assert config_digest("{on: 1, 2: b}") == config_digest("{on: 1, 2: b}")  # keys json cannot order
