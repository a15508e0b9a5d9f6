"""The core sweep end to end through the CLI: real SQLite stores, real trial subprocesses.

Each sweep is kept small (at most 6 points) because every trial is a real Python process that
imports MLflow; sweeps that several tests inspect run once per module.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import PROJECT, REPO, mlflow_runs, optuna_trials, read_records, run_cli, write_config

# Values a shell would interpret; they must reach the trial as they are, and never run.
META_AXIS = ["a b;touch PWNED", "$(touch PWNED2)", "x|y&z"]
META_FIXED = "'q'\"dq\" `touch PWNED3` > redirected.txt"
SHELL_LEFTOVERS = ("PWNED", "PWNED2", "PWNED3", "redirected.txt")


def with_store(directory: Path, template: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, directory / "mlflow.db")
    return directory


@pytest.fixture
def sweep_dir(tmp_path, mlflow_template) -> Path:
    """A test's directory holding an empty, real MLflow store."""
    return with_store(tmp_path, mlflow_template)


def tracking_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def optuna_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'sweeps' / 'optuna.db'}"


def role(runs: list, name: str) -> list:
    return [r for r in runs if r.data.tags.get("sweeper.role") == name]


def output(result) -> str:
    return result.stdout + result.stderr


def study_names(url: str) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage=url))


def shell_leftovers(*directories: Path) -> list[Path]:
    """Files a shell would have created from the metacharacter values; removed once found."""
    found = []
    for directory in directories:
        for name in SHELL_LEFTOVERS:
            found.extend(directory.rglob(name))
    for path in found:
        path.unlink(missing_ok=True)
    return found


def assert_one_finished_parent(runs: list, identity: str) -> object:
    parents = role(runs, "parent")
    assert len(parents) == 1, [p.info.run_id for p in parents]
    parent = parents[0]
    assert parent.data.tags["sweeper.sweep"] == identity
    assert parent.info.status == "FINISHED"
    return parent


# ---- a 3 x 2 command-mode grid, inspected by several tests --------------------------------------


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    directory = tmp_path_factory.mktemp("grid")
    record = directory / "records.jsonl"
    # No MLflow store yet: the sweep creates its own (test_smoke.py's sweep, in the default run).
    config = write_config(
        directory, fresh_store=True, parameters={"x": [1, 2, 3], "y": [10, 20], "record": str(record)}
    )
    result = run_cli("sweep", config, "-j", "2", cwd=directory)
    return {"dir": directory, "config": config, "record": record, "result": result}


def test_grid_runs_every_point_exactly_once(grid):
    assert grid["result"].returncode == 0, output(grid["result"])
    records = read_records(grid["record"])
    seen = sorted((r["params"]["x"], r["params"]["y"]) for r in records)
    assert seen == sorted((str(x), str(y)) for x, y in itertools.product((1, 2, 3), (10, 20)))
    trials = optuna_trials(optuna_url(grid["dir"]))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert sorted((t.params["x"], t.params["y"]) for t in trials) == sorted(
        itertools.product((1, 2, 3), (10, 20))
    )


def test_grid_nesting_and_tags(grid):
    runs = mlflow_runs(tracking_uri(grid["dir"]))
    parent = assert_one_finished_parent(runs, "exp/s1")
    assert "mlflow.parentRunId" not in parent.data.tags
    children = role(runs, "trial")
    assert len(children) == 6
    assert len(runs) == 7, "every run of a sweep carries sweeper.role"
    for run in children:
        assert run.data.tags["sweeper.sweep"] == "exp/s1"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
    by_id = {r.info.run_id: r for r in children}
    trials = optuna_trials(optuna_url(grid["dir"]))
    assert sorted(t.number for t in trials) == list(range(6))
    for trial in trials:
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["sweeper.trial"] == str(trial.number)
    # The training code logged into the child run it was given.
    assert sorted(r["run_id"] for r in read_records(grid["record"])) == sorted(by_id)


def test_grid_trial_logs_are_attached_to_their_runs(grid):
    """Each trial's log is attached to its run, starting with the command it ran."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(grid["dir"]))
    for run in role(mlflow_runs(tracking_uri(grid["dir"])), "trial"):
        number = run.data.tags["sweeper.trial"]
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"trial-{number}.log"]
        local = client.download_artifacts(run.info.run_id, f"trial-{number}.log", str(grid["dir"] / "logs"))
        assert Path(local).read_text().startswith("# command:")


def test_grid_trial_params_and_metrics_on_child_runs(grid):
    runs = {r.info.run_id: r for r in role(mlflow_runs(tracking_uri(grid["dir"])), "trial")}
    for trial in optuna_trials(optuna_url(grid["dir"])):
        run = runs[trial.user_attrs["mlflow_run_id"]]
        x, y = trial.params["x"], trial.params["y"]
        assert run.data.params == {"x": str(x), "y": str(y), "record": str(grid["record"])}
        assert run.data.metrics["score"] == x + y
        assert trial.value == x + y


def test_grid_parent_run_has_config_and_best_trial(grid, tmp_path):
    import mlflow.artifacts

    runs = mlflow_runs(tracking_uri(grid["dir"]))
    parent = assert_one_finished_parent(runs, "exp/s1")
    best = max(role(runs, "trial"), key=lambda r: r.data.metrics["score"])
    assert best.data.params["x"] == "3" and best.data.params["y"] == "20"
    assert parent.data.tags["sweeper.best_run_id"] == best.info.run_id
    assert parent.data.metrics["score"] == 23.0

    # The config as params ...
    params = parent.data.params
    assert params.get("experiment") == "exp"
    assert params.get("sweep_name") == "s1"
    assert any(key.startswith("parameters") for key in params), params
    assert any("metric" in key and value == "score" for key, value in params.items()), params
    # ... and as an artifact with the same content as the file.
    local = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, dst_path=str(tmp_path), tracking_uri=tracking_uri(grid["dir"])
    )
    stored = [p for p in Path(local).rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml")]
    expected = yaml.safe_load(grid["config"].read_text())
    assert any(yaml.safe_load(p.read_text()) == expected for p in stored), stored


def test_grid_optuna_study_and_attrs(grid):
    url = optuna_url(grid["dir"])
    study = optuna.load_study(study_name="exp/s1", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    runs = mlflow_runs(tracking_uri(grid["dir"]))
    parent = assert_one_finished_parent(runs, "exp/s1")
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    run_ids = [t.user_attrs["mlflow_run_id"] for t in study.trials]
    assert sorted(run_ids) == sorted(r.info.run_id for r in role(runs, "trial"))
    assert study.best_value == 23.0
    assert study.best_trial.params == {"x": 3, "y": 20}


def test_status_shows_progress_best_and_parent(grid):
    result = run_cli("status", grid["config"], cwd=grid["dir"])
    assert result.returncode == 0, output(result)
    text = result.stdout
    runs = mlflow_runs(tracking_uri(grid["dir"]))
    parent = role(runs, "parent")[0]
    best = max(role(runs, "trial"), key=lambda r: r.data.metrics["score"])
    assert "exp/s1" in text
    assert re.search(r"\b6\s*/\s*6\b", text) and "done" in text, text
    assert re.search(r"(?<![\d.])23(\.0+)?(?![\d.])", text), text
    assert best.info.run_id in text, text
    assert parent.info.run_id in text, text


def test_finished_sweep_rerun_is_a_no_op(grid):
    before_runs = sorted(r.info.run_id for r in mlflow_runs(tracking_uri(grid["dir"]), deleted=True))
    before_trials = len(optuna_trials(optuna_url(grid["dir"])))
    before_records = len(read_records(grid["record"]))
    result = run_cli("sweep", grid["config"], "-j", "2", cwd=grid["dir"])
    assert result.returncode == 0, output(result)
    assert sorted(r.info.run_id for r in mlflow_runs(tracking_uri(grid["dir"]), deleted=True)) == before_runs
    assert len(optuna_trials(optuna_url(grid["dir"]))) == before_trials
    assert len(read_records(grid["record"])) == before_records
    assert_one_finished_parent(mlflow_runs(tracking_uri(grid["dir"])), "exp/s1")


# ---- algorithms ----------------------------------------------------------------------------------


def test_random_on_a_discrete_space_never_repeats_and_stops_when_exhausted(sweep_dir):
    record = sweep_dir / "records.jsonl"
    config = write_config(
        sweep_dir,
        algorithm="random",
        seed=0,
        max_trials=10,
        parameters={"x": [1, 2], "y": [10, 20], "record": str(record)},
    )
    result = run_cli("sweep", config, "-j", "2", cwd=sweep_dir)
    assert result.returncode == 0, output(result)
    seen = [(r["params"]["x"], r["params"]["y"]) for r in read_records(record)]
    assert sorted(seen) == sorted((str(x), str(y)) for x, y in itertools.product((1, 2), (10, 20)))
    trials = optuna_trials(optuna_url(sweep_dir))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    runs = mlflow_runs(tracking_uri(sweep_dir))
    assert_one_finished_parent(runs, "exp/s1")
    assert len(role(runs, "trial")) == 4


@pytest.mark.extended
def test_tpe_on_a_float_range(sweep_dir):
    record = sweep_dir / "records.jsonl"
    config = write_config(
        sweep_dir,
        algorithm="tpe",
        seed=3,
        max_trials=6,
        parameters={"x": {"low": 0.0, "high": 1.0}, "y": 10, "record": str(record)},
    )
    result = run_cli("sweep", config, "-j", "2", cwd=sweep_dir)
    records = read_records(record)
    assert len(records) == 6, output(result)
    assert result.returncode == 0, output(result)
    assert all(r["params"]["y"] == "10" for r in records)
    trials = optuna_trials(optuna_url(sweep_dir))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    xs = [t.params["x"] for t in trials]
    assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in xs)
    assert len(set(xs)) == 6
    assert sorted(float(r["params"]["x"]) for r in records) == sorted(xs)
    for trial in trials:
        assert trial.value == pytest.approx(trial.params["x"] + 10)
    runs = mlflow_runs(tracking_uri(sweep_dir))
    parent = assert_one_finished_parent(runs, "exp/s1")
    children = role(runs, "trial")
    assert len(children) == 6
    best = max(children, key=lambda r: r.data.metrics["score"])
    assert parent.data.tags["sweeper.best_run_id"] == best.info.run_id


@pytest.mark.extended
def test_random_on_a_float_range(sweep_dir):
    record = sweep_dir / "records.jsonl"
    config = write_config(
        sweep_dir,
        algorithm="random",
        seed=5,
        max_trials=3,
        parameters={"x": {"low": 0.0, "high": 1.0}, "y": [10], "record": str(record)},
    )
    result = run_cli("sweep", config, cwd=sweep_dir)
    records = read_records(record)
    assert len(records) == 3, output(result)
    assert result.returncode == 0, output(result)
    trials = optuna_trials(optuna_url(sweep_dir))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    xs = [t.params["x"] for t in trials]
    assert all(0.0 <= x <= 1.0 for x in xs) and len(set(xs)) == 3
    assert sorted(float(r["params"]["x"]) for r in records) == sorted(xs)
    assert_one_finished_parent(mlflow_runs(tracking_uri(sweep_dir)), "exp/s1")


# ---- launch modes and shell metacharacters ----------------------------------------------------------


def test_command_mode_passes_values_verbatim_and_never_to_a_shell(sweep_dir):
    record = sweep_dir / "records.jsonl"
    config = write_config(
        sweep_dir,
        parameters={"x": META_AXIS, "y": META_FIXED, "z": "`id`", "record": str(record)},
    )
    try:
        result = run_cli("sweep", config, "-j", "2", cwd=sweep_dir)
        assert result.returncode == 0, output(result)
        records = read_records(record)
        assert len(records) == len(META_AXIS)
        assert sorted(r["params"]["x"] for r in records) == sorted(META_AXIS)
        for rec in records:
            argv = rec["argv"]
            x = rec["params"]["x"]
            # One argv token per parameter, `name=value`, exactly as configured.
            assert argv == [f"x={x}", f"y={META_FIXED}", "z=`id`", f"record={record}"], argv
        runs = mlflow_runs(tracking_uri(sweep_dir))
        assert_one_finished_parent(runs, "exp/s1")
        children = role(runs, "trial")
        assert sorted(r.data.params["x"] for r in children) == sorted(META_AXIS)
        assert all(r.data.params["y"] == META_FIXED and r.data.params["z"] == "`id`" for r in children)
        assert all(r.info.status == "FINISHED" for r in children)
    finally:
        leftovers = shell_leftovers(sweep_dir, PROJECT, REPO)
    assert leftovers == [], f"a shell interpreted a parameter value: {leftovers}"


def test_entry_point_mode_passes_values_verbatim_through_the_mlproject_command(tmp_path, mlflow_template):
    record = tmp_path / "records.jsonl"
    with_store(tmp_path / "conf", mlflow_template)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = write_config(
        tmp_path / "conf",
        entry_point="train",
        project=os.path.relpath(PROJECT, tmp_path / "conf"),  # resolved against the config's directory
        # an undeclared parameter is refused before anything runs (see test_real_projects.py)
        parameters={"x": META_AXIS, "y": META_FIXED, "record": str(record)},
    )
    try:
        result = run_cli("sweep", config, "-j", "2", cwd=elsewhere)
        assert result.returncode == 0, output(result)
        records = read_records(record)
        assert len(records) == len(META_AXIS)
        assert sorted(r["params"]["x"] for r in records) == sorted(META_AXIS)
        for rec in records:
            params = rec["params"]
            assert params["y"] == META_FIXED
            assert params["record"] == str(record)
            assert params["behave"] == "ok"  # the entry point's default
            assert f"x={params['x']}" in rec["argv"] and f"y={META_FIXED}" in rec["argv"]

        db = tmp_path / "conf"
        runs = mlflow_runs(tracking_uri(db))
        parent = assert_one_finished_parent(runs, "exp/s1")
        children = role(runs, "trial")
        assert len(children) == len(META_AXIS)
        assert sorted(r.info.run_id for r in children) == sorted(r["run_id"] for r in records)
        for run in children:
            assert run.info.status == "FINISHED"
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert run.data.tags["sweeper.sweep"] == "exp/s1"
            assert run.data.params["y"] == META_FIXED and run.data.params["behave"] == "ok"
            assert run.data.params["x"] in META_AXIS
            assert run.data.metrics["score"] == len(run.data.params["x"]) + len(META_FIXED)
        trials = optuna_trials(optuna_url(db))
        assert [t.state.name for t in trials] == ["COMPLETE"] * len(META_AXIS)
        by_id = {r.info.run_id: r for r in children}
        for trial in trials:
            assert by_id[trial.user_attrs["mlflow_run_id"]].data.tags["sweeper.trial"] == str(trial.number)
    finally:
        leftovers = shell_leftovers(tmp_path, PROJECT, REPO)
    assert leftovers == [], f"a shell interpreted a parameter value: {leftovers}"


# ---- agent behaviour -------------------------------------------------------------------------------


def test_resume_after_count_completes_the_rest_under_the_same_parent(sweep_dir):
    record = sweep_dir / "records.jsonl"
    config = write_config(sweep_dir, parameters={"x": [1, 2], "y": [10, 20], "record": str(record)})
    everything = sorted((str(x), str(y)) for x, y in itertools.product((1, 2), (10, 20)))

    first = run_cli("sweep", config, "-j", "2", "--count", "2", cwd=sweep_dir)
    assert first.returncode == 0, output(first)
    assert "this agent stopped at --count 2; the sweep is not finished" in output(first)
    assert len(read_records(record)) == 2
    runs = mlflow_runs(tracking_uri(sweep_dir))
    parents = role(runs, "parent")
    assert len(parents) == 1
    assert parents[0].info.status == "RUNNING", "the parent is never FINISHED before the sweep is"
    assert len(role(runs, "trial")) == 2
    assert [t.state.name for t in optuna_trials(optuna_url(sweep_dir))] == ["COMPLETE"] * 2

    second = run_cli("sweep", config, "-j", "2", cwd=sweep_dir)
    assert second.returncode == 0, output(second)
    seen = sorted((r["params"]["x"], r["params"]["y"]) for r in read_records(record))
    assert seen == everything
    runs = mlflow_runs(tracking_uri(sweep_dir))
    parent = assert_one_finished_parent(runs, "exp/s1")
    assert parent.info.run_id == parents[0].info.run_id
    children = role(runs, "trial")
    assert len(children) == 4
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    trials = optuna_trials(optuna_url(sweep_dir))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert parent.data.metrics["score"] == 22.0


BARRIER = """\
import os, sys, time
params = dict(arg.split("=", 1) for arg in sys.argv[1:])
directory, needed = params["dir"], int(params["n"])
open(os.path.join(directory, "arrived-" + params["x"]), "w").close()
deadline = time.monotonic() + 120  # a deadlock guard, not a measurement
while len([n for n in os.listdir(directory) if n.startswith("arrived-")]) < needed:
    if time.monotonic() > deadline:
        sys.exit(5)
    time.sleep(0.05)
"""


def test_n_jobs_3_runs_three_trials_at_once(sweep_dir):
    """Each trial waits until all three have started: the sweep only succeeds with 3 at once."""
    script = sweep_dir / "barrier.py"
    script.write_text(BARRIER)
    arrivals = sweep_dir / "arrivals"
    arrivals.mkdir()
    config = write_config(
        sweep_dir,
        command=f"{sys.executable} {script}",
        parameters={"x": [1, 2, 3], "dir": str(arrivals), "n": 3},
        spec=None,
        max_retries=0,
    )
    result = run_cli("sweep", config, "-j", "3", cwd=sweep_dir)
    assert result.returncode == 0, output(result)
    assert sorted(p.name for p in arrivals.iterdir()) == ["arrived-1", "arrived-2", "arrived-3"]
    trials = optuna_trials(optuna_url(sweep_dir))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3  # no spec: complete when the run succeeds
    runs = mlflow_runs(tracking_uri(sweep_dir))
    assert_one_finished_parent(runs, "exp/s1")
    assert [r.info.status for r in role(runs, "trial")] == ["FINISHED"] * 3
    # Optuna's own tools read the storage (they need a value on every COMPLETE trial) ...
    summaries = optuna.get_all_study_summaries(optuna_url(sweep_dir))
    assert sorted(s.study_name for s in summaries) == ["exp/s1", "exp/s1#claims", "exp/s1#close"]
    for name in ("exp/s1", "exp/s1#close"):
        assert optuna.load_study(study_name=name, storage=optuna_url(sweep_dir)).best_trial is not None
    # ... and the sweep names no best, and shows no value
    status = json.loads(run_cli("status", config, "--json", cwd=sweep_dir).stdout)["sweeps"][0]
    assert status["best"] is None and status["complete"] == 3
    edited = sweep_dir / "edited.yaml"  # a spec added since: the stored sweep still has no values
    edited.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "spec": {"metric": "score"}}))
    status = json.loads(run_cli("status", edited, "--json", cwd=sweep_dir).stdout)["sweeps"][0]
    assert status["best"] is None and status["complete"] == 3, status
    rows = list(csv.DictReader((sweep_dir / "sweeps" / "reports" / "exp_s1" / "trials.csv").open()))
    assert len(rows) == 3 and all("value" not in row or row["value"] == "" for row in rows), rows


@pytest.mark.extended  # the same and more: test_triage.py's missing metric
def test_trial_without_the_metric_fails_with_a_visible_reason(sweep_dir):
    config = write_config(sweep_dir, parameters={"x": [1], "y": [10], "behave": "no_metric"}, max_retries=0)
    result = run_cli("sweep", config, cwd=sweep_dir)
    assert result.returncode == 1, output(result)
    trials = optuna_trials(optuna_url(sweep_dir))
    assert [t.state.name for t in trials] == ["FAIL"]
    reason = trials[0].user_attrs.get("fail_reason", "")
    shown = "score" in reason or ("score" in result.stderr and "metric" in result.stderr)
    assert shown, (reason, output(result))
    runs = mlflow_runs(tracking_uri(sweep_dir))
    children = role(runs, "trial")
    assert len(children) == 1
    assert children[0].info.status == "FAILED"
    assert children[0].info.run_id == trials[0].user_attrs["mlflow_run_id"]
    assert_one_finished_parent(runs, "exp/s1")


# ---- several configs, then delete ----------------------------------------------------------------


@pytest.fixture(scope="module")
def three_sweeps(tmp_path_factory, mlflow_template):
    """Sweeps a, b, c in one experiment and one pair of storages, run by one invocation."""
    directory = with_store(tmp_path_factory.mktemp("three"), mlflow_template)
    configs, records = {}, {}
    for name, xs in (("a", [1, 2]), ("b", [3]), ("c", [4]), ("d", [5])):
        records[name] = directory / f"records-{name}.jsonl"
        configs[name] = write_config(
            directory,
            name=f"{name}.yaml",
            sweep_name=name,
            parameters={"x": xs, "y": [10], "record": str(records[name])},
        )
    # d is never run: the sweep that does not exist.
    result = run_cli("sweep", configs["a"], f"{configs['b']},{configs['c']}", "-j", "2", cwd=directory)
    snapshot = {
        "runs": mlflow_runs(tracking_uri(directory)),
        "studies": {n: optuna_trials(optuna_url(directory), f"exp/{n}") for n in ("a", "b", "c")},
    }
    return {"dir": directory, "configs": configs, "records": records, "result": result, "snapshot": snapshot}


def sweep_state(directory: Path) -> dict:
    """Everything delete might touch: study names with their trials, and runs by lifecycle."""
    url = optuna_url(directory)
    studies = {name: len(optuna_trials(url, name)) for name in study_names(url)}
    runs = mlflow_runs(tracking_uri(directory), deleted=True)
    return {
        "studies": studies,
        "runs": sorted(
            (r.info.run_id, r.data.tags.get("sweeper.sweep"), r.info.lifecycle_stage) for r in runs
        ),
    }


def test_several_configs_space_and_comma_separated(three_sweeps):
    result = three_sweeps["result"]
    assert result.returncode == 0, output(result)
    runs = three_sweeps["snapshot"]["runs"]
    for name, xs in (("a", [1, 2]), ("b", [3]), ("c", [4])):
        identity = f"exp/{name}"
        assert sorted(r["params"]["x"] for r in read_records(three_sweeps["records"][name])) == [
            str(x) for x in xs
        ]
        mine = [r for r in runs if r.data.tags.get("sweeper.sweep") == identity]
        parent = assert_one_finished_parent(mine, identity)
        children = role(mine, "trial")
        assert len(children) == len(xs)
        assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
        trials = three_sweeps["snapshot"]["studies"][name]
        assert [t.state.name for t in trials] == ["COMPLETE"] * len(xs)
        assert sorted(t.number for t in trials) == list(range(len(xs)))  # numbers are per sweep
        assert optuna.load_study(study_name=identity, storage=optuna_url(three_sweeps["dir"])).user_attrs[
            "mlflow_parent_run_id"
        ] == (parent.info.run_id)
    assert not read_records(three_sweeps["records"]["d"])


def test_two_sweeps_whose_folder_names_are_the_same_keep_their_own_logs_and_reports(tmp_path):
    """`a_b`/`c` and `a`/`b_c` both read `a_b_c` as a folder name: each keeps its own trial
    logs and report (the second gets the name with a short hash appended)."""
    configs = [
        write_config(
            tmp_path, f"{i}.yaml", experiment=experiment, sweep_name=name, spec=None,
            command=f"{sys.executable} -c \"print('{experiment}/{name}')\"", parameters={"x": [1]},
        )  # fmt: skip
        for i, (experiment, name) in enumerate((("a_b", "c"), ("a", "b_c")))
    ]
    result = run_cli("sweep", *configs, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    logs = sorted((tmp_path / "sweeps" / "logs").glob("*/trial-0.log"))
    assert [p.parent.name[:5] for p in logs] == ["a_b_c", "a_b_c"]
    said = [[s for s in ("a_b/c", "a/b_c") if f"{s}\n" in p.read_text()] for p in logs]
    assert sorted(said) == [["a/b_c"], ["a_b/c"]]  # each its own trial's output
    assert {p.parent.name for p in logs} == {p.name for p in (tmp_path / "sweeps" / "reports").iterdir()}


def test_a_placeholder_of_a_conditional_parameter_is_passed_only_where_it_is_on(tmp_path):
    """`--mom {mom}` with `mom` only under `opt: b`: the points without it leave both tokens out."""
    record = tmp_path / "argv.txt"
    script = f"import sys; open({str(record)!r}, 'a').write(' '.join(sys.argv[1:]) + chr(10))"
    config = write_config(
        tmp_path, spec=None, command=f"{sys.executable} -c \"{script}\" --opt={{opt}} --mom {{mom}}",
        parameters={"opt": ["a", "b"], "mom": {"values": [1, 2], "when": {"opt": "b"}}},
    )  # fmt: skip
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert sorted(record.read_text().splitlines()) == ["--opt=a", "--opt=b --mom 1", "--opt=b --mom 2"]


def test_delete_without_yes_and_without_terminal_deletes_nothing(three_sweeps):
    directory = three_sweeps["dir"]
    before = sweep_state(directory)
    result = run_cli("delete", three_sweeps["configs"]["a"], cwd=directory)  # stdin is not a terminal
    assert result.returncode != 0, output(result)
    assert sweep_state(directory) == before


def _answer_at_the_prompt(command: list[str], cwd: Path, keys: bytes) -> tuple[int, str]:
    """Run `command` on a pseudo-terminal; once it asks, type `keys`. Its exit code and output."""
    import pty
    import select
    import subprocess

    from conftest import cli_env

    def on_its_own_terminal() -> None:  # Ctrl-C there signals it, as on a user's terminal
        import fcntl
        import termios

        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    master, slave = pty.openpty()
    terminal = {"stdin": slave, "stdout": slave, "stderr": slave}
    proc = subprocess.Popen(command, cwd=cwd, env=cli_env(), preexec_fn=on_its_own_terminal, **terminal)
    os.close(slave)
    seen, typed = b"", False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the command ended: its side of the terminal is closed
                break
            seen += chunk
        if not typed and b"[y/N]" in seen:
            os.write(master, keys)
            typed = True
    os.close(master)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_delete_answered_no_deletes_nothing_and_is_no_error(three_sweeps):
    directory = three_sweeps["dir"]
    before = sweep_state(directory)
    command = [sys.executable, "-m", "mlflow_sweeper", "delete", str(three_sweeps["configs"]["a"])]
    code, said = _answer_at_the_prompt(command, directory, b"n\n")
    assert code == 0 and "nothing deleted" in said and "Traceback" not in said, said
    assert sweep_state(directory) == before


@pytest.mark.parametrize("keys", [b"\x04", b"\x03"], ids=["ctrl-d", "ctrl-c"])
def test_delete_left_at_its_prompt_deletes_nothing_and_says_so(three_sweeps, keys):
    directory = three_sweeps["dir"]
    before = sweep_state(directory)
    command = [sys.executable, "-m", "mlflow_sweeper", "delete", str(three_sweeps["configs"]["a"])]
    code, said = _answer_at_the_prompt(command, directory, keys)
    assert code == 130 and "unexpected" not in said and "Traceback" not in said, said
    if keys == b"\x04":  # Ctrl-C may come before the prompt reads, and the terminal lose the rest
        assert "nothing deleted" in said, said
    assert sweep_state(directory) == before


def test_status_piped_into_a_reader_that_stops_early_ends_cleanly(three_sweeps):
    """`status a.yaml b.yaml | head -1`: the rest of the output goes nowhere, no error."""
    import subprocess

    from conftest import cli_env

    configs = [str(three_sweeps["configs"][name]) for name in ("a", "b", "c")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow_sweeper", "status", *configs],
        cwd=three_sweeps["dir"], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before the first line
    _, errors = proc.communicate(timeout=120)
    assert proc.returncode == 0 and not errors.strip(), errors.decode()


def test_commands_started_without_stdout_or_stderr_run_to_their_end(tmp_path):
    """`sweep ... >&- 2>&-` (a cron line, a closed terminal): what they would show goes nowhere,
    the sweep runs, and no file the agent opens takes the closed descriptors' place."""
    import subprocess

    from conftest import cli_env

    config = write_config(tmp_path, spec=None, parameters={"x": [1, 2]}, command="echo trial {x}")

    def closed(*args: str, close: tuple[int, ...] = (1, 2)) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "mlflow_sweeper", *args, str(config)]
        return subprocess.run(
            command, cwd=tmp_path, env=cli_env(), stderr=subprocess.PIPE if 2 not in close else None,
            preexec_fn=lambda: [os.close(fd) for fd in close], timeout=300,
        )  # fmt: skip

    assert closed("sweep").returncode == 0
    shown = closed("status", close=(1,))
    assert shown.returncode == 0 and not shown.stderr.strip(), shown.stderr.decode()
    assert closed("status", "--json").returncode == 0
    entry = json.loads(run_cli("status", config, "--json", cwd=tmp_path).stdout)["sweeps"][0]
    assert (entry["done"], entry["parent_status"]) == (2, "FINISHED")
    refused = closed("delete", close=(0,))  # no stdin at all: nobody to ask, as without a terminal
    assert refused.returncode == 2 and b"without --yes" in refused.stderr, refused.stderr
    logs = (tmp_path / "sweeps" / "logs").rglob("trial-*.log")
    said = sorted(log.read_text().strip().splitlines()[-1] for log in logs)
    assert said == ["trial 1", "trial 2"], said  # each trial's output in its own log


def test_delete_yes_removes_exactly_one_sweep(three_sweeps):
    directory = three_sweeps["dir"]
    assert three_sweeps["result"].returncode == 0, output(three_sweeps["result"])
    before = sweep_state(directory)
    b_runs = {run_id for run_id, sweep, _ in before["runs"] if sweep == "exp/b"}
    assert len(b_runs) == 2  # parent and one trial
    kept_here = [directory / "sweeps" / kind / f"exp_{n}" for kind in ("logs", "reports") for n in "abc"]
    assert all(folder.is_dir() for folder in kept_here), [f for f in kept_here if not f.is_dir()]

    result = run_cli("delete", three_sweeps["configs"]["b"], "--yes", cwd=directory)
    assert result.returncode == 0, output(result)
    gone = [folder.name for folder in kept_here if not folder.exists()]
    assert gone == ["exp_b", "exp_b"], "b's trial logs and report, no other sweep's"
    after = sweep_state(directory)
    # The Optuna side: nothing of exp/b is left, a and c are as they were.
    assert not [name for name in after["studies"] if name.startswith("exp/b")], after["studies"]
    assert {k: v for k, v in after["studies"].items() if not k.startswith("exp/b")} == {
        k: v for k, v in before["studies"].items() if not k.startswith("exp/b")
    }
    with pytest.raises(KeyError):
        optuna.load_study(study_name="exp/b", storage=optuna_url(directory))
    # The MLflow side: b's runs soft-deleted (restorable), every other run untouched.
    for run_id, sweep, stage in after["runs"]:
        if sweep == "exp/b":
            assert run_id in b_runs and stage == "deleted"
    assert {r for r in after["runs"] if r[1] != "exp/b"} == {r for r in before["runs"] if r[1] != "exp/b"}
    assert {r[0] for r in after["runs"] if r[1] == "exp/b"} == b_runs
    active = mlflow_runs(tracking_uri(directory))
    assert not [r for r in active if r.data.tags.get("sweeper.sweep") == "exp/b"]
    for name in ("a", "c"):
        mine = [r for r in active if r.data.tags.get("sweeper.sweep") == f"exp/{name}"]
        assert_one_finished_parent(mine, f"exp/{name}")


def test_delete_a_sweep_that_does_not_exist(three_sweeps):
    directory = three_sweeps["dir"]
    before = sweep_state(directory)
    result = run_cli("delete", three_sweeps["configs"]["d"], "--yes", cwd=directory)
    assert result.returncode == 0, output(result)
    assert re.search(r"no such|not exist|nothing|not found", output(result), re.IGNORECASE), output(result)
    assert sweep_state(directory) == before
    # nothing to confirm: without --yes and without a terminal too
    result = run_cli("delete", three_sweeps["configs"]["d"], cwd=directory)
    assert result.returncode == 0 and "no such sweep" in output(result), output(result)
    assert sweep_state(directory) == before


def test_delete_leaves_another_sweep_of_the_same_name_with_its_own_optuna_storage(tmp_path):
    """Two users share a tracking store and name their sweeps alike, each with the default Optuna
    storage beside their config: two sweeps. Deleting (purging) one leaves the other whole."""
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    configs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        keys = {"mlflow_storage": shared, "spec": None, "parameters": {"x": [1]}}
        configs.append(write_config(tmp_path / name, **keys))
    for config in configs:
        result = run_cli("sweep", config, cwd=config.parent)
        assert result.returncode == 0, output(result)
    before = {r.info.run_id for r in mlflow_runs(shared)}
    assert len(before) == 4  # two parents, two trials

    result = run_cli("delete", configs[0], "--yes", "--purge", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "2 MLflow run(s) permanently deleted" in output(result), output(result)
    kept = mlflow_runs(shared, deleted=True)
    assert len(kept) == 2 and all(r.info.lifecycle_stage == "active" for r in kept)
    assert_one_finished_parent(kept, "exp/s1")
    status = run_cli("status", configs[1], "--json", cwd=tmp_path)
    entry = json.loads(status.stdout)["sweeps"][0]
    assert entry["parent_status"] == "FINISHED" and entry["done"] == 1, status.stdout


def test_delete_tells_sweeps_apart_whose_optuna_storage_comes_from_the_environment(tmp_path):
    """`optuna_storage: ${OPT}`: the same text for both sweeps, another storage each."""
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    config = write_config(
        tmp_path, mlflow_storage=shared, spec=None, parameters={"x": [1]}, optuna_storage="${OPT}"
    )
    from mlflow.tracking import MlflowClient

    envs = [{"OPT": f"sqlite:///{tmp_path / name}"} for name in ("one.db", "two.db")]
    client = MlflowClient(shared)
    for env in envs:
        assert run_cli("sweep", config, cwd=tmp_path, env=env).returncode == 0
        # `mlflow run -e status`'s own run: a record of this sweep's, kept with it
        admin = client.create_run(client.get_experiment_by_name("exp").experiment_id).info.run_id
        env_run = {**env, "MLFLOW_RUN_ID": admin, "MLFLOW_TRACKING_URI": shared}
        assert run_cli("status", config, cwd=tmp_path, env=env_run).returncode == 0
    result = run_cli("delete", config, "--yes", cwd=tmp_path, env=envs[0])
    assert "3 MLflow run(s) deleted" in output(result), output(result)
    kept = mlflow_runs(shared)
    assert len(kept) == 3 and sum(run.data.tags["sweeper.role"] == "admin" for run in kept) == 1
    assert_one_finished_parent([run for run in kept if run.data.tags["sweeper.role"] != "admin"], "exp/s1")

    # as `mlflow run -e delete` twice more: the second finds only the first one's own run
    said = []
    for _ in range(2):
        admin = client.create_run(client.get_experiment_by_name("exp").experiment_id).info.run_id
        env_run = {**envs[0], "MLFLOW_RUN_ID": admin, "MLFLOW_TRACKING_URI": shared}
        said.append(output(run_cli("delete", config, "--yes", cwd=tmp_path, env=env_run)))
    assert "exp/s1: no such sweep, nothing to delete" in said[0], said[0]
    assert "exp/s1: no such sweep in the Optuna storage; 1 MLflow run(s) of it deleted" in said[1], said[1]


@pytest.fixture
def parent_deleted_in_the_ui(tmp_path) -> dict:
    """A sweep of two trials that completed, then its parent run deleted in the MLflow UI."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = write_config(tmp_path, spec=None, parameters={"x": [1, 2]})
    assert run_cli("sweep", config, cwd=tmp_path).returncode == 0
    parent = next(r for r in mlflow_runs(uri) if r.data.tags["sweeper.role"] == "parent")
    MlflowClient(uri).delete_run(parent.info.run_id)
    return {"uri": uri, "config": config, "dir": tmp_path}


def test_status_says_a_parent_was_deleted_in_the_ui_and_the_next_agent_restores_it(parent_deleted_in_the_ui):
    config, directory = parent_deleted_in_the_ui["config"], parent_deleted_in_the_ui["dir"]
    status = run_cli("status", config, cwd=directory)
    deleted = "(FINISHED, deleted in MLflow: restore it in the UI, or run the sweep again)"
    assert deleted in status.stdout, output(status)
    entry = json.loads(run_cli("status", config, "--json", cwd=directory).stdout)["sweeps"][0]
    assert (entry["parent_status"], entry["parent_deleted"]) == ("FINISHED", True)
    assert run_cli("sweep", config, cwd=directory).returncode == 0
    entry = json.loads(run_cli("status", config, "--json", cwd=directory).stdout)["sweeps"][0]
    assert (entry["parent_status"], entry["parent_deleted"], entry["done"]) == ("FINISHED", False, 2)


def test_delete_removes_the_trials_of_a_parent_deleted_in_the_ui(parent_deleted_in_the_ui):
    sweep = parent_deleted_in_the_ui
    result = run_cli("delete", sweep["config"], "--yes", cwd=sweep["dir"])
    assert "its Optuna study and 2 MLflow run(s) deleted" in output(result), output(result)
    uri = sweep["uri"]
    assert mlflow_runs(uri) == []
