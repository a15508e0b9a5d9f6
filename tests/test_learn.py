"""Learning across sweeps end to end through the CLI: constraints on logged metrics, `refine`,
and `warm_start`. Real SQLite stores, real trial subprocesses; sweeps kept to a few points."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
from conftest import PROJECT, mlflow_runs, optuna_trials, read_records, run_cli, start_cli, write_config
from mlflow.tracking import MlflowClient
from test_bad_config import assert_nothing_written, snapshot, the_message

from mlflow_sweeper.config import load_config
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.search.space import suggest_point

CONSTRAINED = PROJECT / "constrained.py"


def tracking_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def optuna_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'sweeps' / 'optuna.db'}"


def output(result) -> str:
    return result.stdout + result.stderr


def by_role(runs: list, name: str) -> list:
    return [r for r in runs if r.data.tags.get("sweeper.role") == name]


@pytest.mark.timeout(900)
def test_constrained_grid_best_is_the_best_feasible_trial(tmp_path):
    # score = x + y, latency = 10 x: the unconstrained best (x=3, y=20) is infeasible
    config = write_config(
        tmp_path,
        command=f"python {CONSTRAINED}",
        parameters={"x": [2, 3], "y": [10, 20]},
        spec={"metric": "score", "direction": "maximize", "constraints": ["latency <= 20"]},
    )
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, output(result)
    assert output(result).count("not feasible: violates latency <= 20") == 2, output(result)
    runs = mlflow_runs(tracking_uri(tmp_path))
    trials = by_role(runs, "trial")
    assert len(trials) == 4
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
    # `refine`: the best feasible trial uses y's largest value, so y gets the next one
    refined = run_cli("refine", config, "--out", tmp_path / "next.yaml", cwd=tmp_path)
    assert refined.returncode == 0, output(refined)
    assert "y: widened with 30" in refined.stdout
    loaded = load_config(tmp_path / "next.yaml")
    assert loaded.space.axes["y"].values == (10, 20, 30) and loaded.sweep_name == "s1-refined"
    # `--out -`: the config alone on standard output (here next to next.yaml, so the next name)
    piped = run_cli("refine", config, "--out", "-", cwd=tmp_path)
    assert piped.returncode == 0, output(piped)
    assert "y: widened with 30" in piped.stderr and not (tmp_path / "-").exists()
    (tmp_path / "piped.yaml").write_text(piped.stdout)
    assert load_config(tmp_path / "piped.yaml").sweep_name == "s1-refined2"


def test_a_trial_without_its_constraint_metric_fails_and_status_has_no_best(tmp_path):
    """As for a missing objective: not retried (another attempt would not log it either), and the
    message names what the run logged and the key to fix."""
    config = write_config(
        tmp_path,
        command=f"python {CONSTRAINED} latency=no",
        parameters={"x": [1], "y": [10]},
        max_retries=2,
        fail_fast=0,
        spec={"metric": "score", "direction": "maximize", "constraints": ["latency <= 20"]},
    )
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 1, output(result)
    assert "did not log the constraint metric 'latency'" in output(result)
    assert "fix spec.constraints or the training code" in output(result) and "not retried" in output(result)
    assert len(optuna_trials(optuna_url(tmp_path))) == 1  # one attempt
    status = run_cli("status", config, cwd=tmp_path)
    assert "best: - (no feasible trial yet)" in status.stdout, output(status)


def _latency_sweep(tmp_path: Path, latency: str, constraints: list[str], **keys):
    """One point of the constrained trial swept, its `latency` metric as `latency` says."""
    config = write_config(
        tmp_path,
        command=f"python {CONSTRAINED} latency={latency}",
        parameters={"x": [1], "y": [10]},
        spec={"metric": "score", "direction": "maximize", "constraints": constraints},
        **keys,
    )
    return run_cli("sweep", config, cwd=tmp_path)


def test_a_nan_constraint_metric_makes_the_point_infeasible_as_a_nan_objective_does(tmp_path):
    result = _latency_sweep(tmp_path, "nan", ["latency <= 20"])
    assert result.returncode == 0, output(result)  # infeasible: no failure for the exit code
    assert "the constraint metric 'latency' is NaN; not retried" in output(result)
    [trial] = by_role(mlflow_runs(tracking_uri(tmp_path)), "trial")
    assert trial.data.tags["sweeper.infeasible"] == "the constraint metric 'latency' is NaN"


def test_a_constraint_metric_never_logged_is_named_before_one_logged_as_nan(tmp_path):
    """A typo in a constraint's metric is a setup to fix, not hidden behind a NaN making the point
    infeasible."""
    result = _latency_sweep(tmp_path, "nan", ["latency <= 20", "latencyy <= 3"], fail_fast=0)
    assert result.returncode == 1, output(result)
    assert "did not log the constraint metric 'latencyy' (did you mean 'latency'?)" in output(result)


def test_a_sweep_whose_every_result_is_infeasible_says_so_as_it_completes(tmp_path):
    config = write_config(
        tmp_path,
        command=f"python {CONSTRAINED}",
        parameters={"x": [1], "y": [10]},
        spec={"metric": "score", "direction": "maximize", "constraints": ["latency <= 5"]},
    )
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "complete, parent run" in output(result)
    assert "no feasible trial (none satisfies spec.constraints)" in output(result), output(result)


def test_several_objectives_with_no_feasible_trial_say_so_and_tag_no_front(tmp_path):
    spec = {
        "metrics": [{"name": "score", "direction": "maximize"}, {"name": "latency", "direction": "minimize"}],
        "constraints": ["latency <= 5"],
    }
    grid = {"x": [1], "y": [10]}
    config = write_config(tmp_path, command=f"python {CONSTRAINED}", parameters=grid, spec=spec)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    status = run_cli("status", config, cwd=tmp_path).stdout
    assert "pareto front: - (no feasible trial yet)" in status, status
    (parent,) = by_role(mlflow_runs(tracking_uri(tmp_path)), "parent")
    assert "sweeper.pareto_run_ids" not in parent.data.tags, "no front: no tag, not an empty one"
    assert "**Pareto front:** no feasible trial yet." in parent.data.tags["mlflow.note.content"]


# ---- warm start --------------------------------------------------------------------------------


def launched(record: Path) -> list[dict]:
    """The trial processes that ran (each appends a line to `record`)."""
    return read_records(record) if record.exists() else []


@pytest.mark.timeout(900)
def test_grid_extended_under_a_new_name_runs_only_the_new_points(tmp_path):
    record = tmp_path / "records.jsonl"
    params = {"x": [1, 2], "y": [10, 20], "record": str(record)}
    old = write_config(tmp_path, "old.yaml", parameters=params)
    assert run_cli("sweep", old, cwd=tmp_path).returncode == 0
    assert len(launched(record)) == 4
    record.unlink()

    def sweep_from(sources: list[str], name: str, xs: list[int], **keys) -> tuple[Path, str]:
        """Sweep `name` over x in `xs` warm-started from the sweeps `sources`: its config, and
        what the agent said (it exited 0)."""
        config = write_config(
            tmp_path, f"{name}.yaml", sweep_name=name, parameters={**params, "x": xs},
            warm_start=[{"sweep": source} for source in sources], **keys,
        )  # fmt: skip
        result = run_cli("sweep", config, cwd=tmp_path)
        assert result.returncode == 0, output(result)
        return config, output(result)

    new, said = sweep_from(["exp/s1"], "s2", [1, 2, 3])
    assert "4 earlier result(s) fit this sweep and enter it, 0 did not fit" in said
    ran = launched(record)
    assert sorted((r["params"]["x"], r["params"]["y"]) for r in ran) == [("3", "10"), ("3", "20")]
    trials = optuna_trials(optuna_url(tmp_path), "exp/s2")
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted((t.params["x"], t.params["y"]) for t in trials) == [
        (x, y) for x in (1, 2, 3) for y in (10, 20)
    ]
    warm = [t for t in trials if "warm_start" in t.user_attrs]
    assert len(warm) == 4 and {t.user_attrs["warm_start"] for t in warm} == {"sweep:exp/s1"}
    old_runs = {
        r.info.run_id
        for r in by_role(mlflow_runs(tracking_uri(tmp_path)), "trial")
        if r.data.tags.get("sweeper.sweep") == "exp/s1"
    }
    assert {t.user_attrs["mlflow_run_id"] for t in warm} == old_runs
    best = max(trials, key=lambda t: t.value)
    (parent,) = [
        r
        for r in by_role(mlflow_runs(tracking_uri(tmp_path)), "parent")
        if r.data.tags["sweeper.sweep"] == "exp/s2"
    ]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweeper.best_run_id"] == best.user_attrs["mlflow_run_id"]
    status = run_cli("status", new, cwd=tmp_path).stdout
    assert "6/6 done" in status, status  # the 4 points earlier results hold are done, not run
    held = "warm start: 4 earlier result(s) in the study (4 of them hold points of the budget, done without"
    assert held in status, status
    entry = json.loads(run_cli("status", new, "--json", cwd=tmp_path).stdout)["sweeps"][0]
    assert (entry["budget"], entry["done"], entry["warm_started"], entry["warm_held"]) == (6, 6, 4, 4)
    out = tmp_path / "report"
    assert run_cli("report", new, "--out", out, cwd=tmp_path).returncode == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 6
    assert "4 of these are earlier results (4 from sweep:exp/s1)" in (out / "report.html").read_text()
    assert sum(r["warm_start"] == "sweep:exp/s1" for r in rows) == 4
    # earlier results ran in their own sweep: no attempts, start or duration of this one
    assert all(r["attempts"] == r["start"] == r["duration"] == "" for r in rows if r["warm_start"])
    assert all(r["attempts"] == "1" and r["duration"] for r in rows if not r["warm_start"])
    # resumed without its warm_start: no change, the parent keeps the config that names its sources
    _, said = sweep_from([], "s2", [1, 2, 3])
    assert "already complete" in said and "config changed" not in said, said

    # A sweep warm-started from s2 alone holds s2's own results and those s2 started from; one
    # whose target an earlier result already reaches runs nothing and says why it stopped.
    record.unlink()
    _, said = sweep_from(["exp/s2"], "s5", [1, 2, 3])
    assert "6 earlier result(s) fit this sweep and enter it, 0 did not fit" in said
    assert launched(record) == []
    target = {"direction": "maximize", "metric": "score", "target": 22}
    _, said = sweep_from(["exp/s1"], "s6", [1, 2, 3, 4], spec=target)
    assert "already complete (a result reached spec.target), nothing to run" in said
    assert launched(record) == []
    (parent,) = [
        r
        for r in by_role(mlflow_runs(tracking_uri(tmp_path)), "parent")
        if r.data.tags["sweeper.sweep"] == "exp/s6"
    ]
    assert parent.data.tags["sweeper.stopped"] == "target" and parent.info.status == "FINISHED"

    # Random over the finite space, 2 new trials: the 6 earlier points use none of them and run
    # no more; the 2 it runs are the 2 points left.
    record.unlink(missing_ok=True)
    third, _ = sweep_from(["exp/s1", "exp/s2"], "s3", [1, 2, 3, 4], algorithm="random", seed=3, max_trials=2)
    ran = launched(record)
    assert sorted((r["params"]["x"], r["params"]["y"]) for r in ran) == [("4", "10"), ("4", "20")]
    status = run_cli("status", third, cwd=tmp_path).stdout
    assert "0 remaining (2 attempts)" in status, status  # the earlier points it holds ran elsewhere

    # A sweep that learned nothing (every trial failed) starts over under a config that adds
    # `warm_start`, and its earlier results enter the new study; once it has learned, another
    # `warm_start` is a change like any other (exit 2, a new sweep_name is the way).
    record.unlink()
    keys = {"sweep_name": "s4", "max_retries": 0, "fail_fast": 0}
    failing = write_config(
        tmp_path, "fourth.yaml", parameters={**params, "x": [1, 2, 3], "behave": "fail"}, **keys
    )
    assert run_cli("sweep", failing, cwd=tmp_path).returncode == 1
    record.unlink()
    fixed = write_config(
        tmp_path,
        "fourth.yaml",
        parameters={**params, "x": [1, 2, 3]},
        warm_start=[{"sweep": "exp/s1"}],
        **keys,
    )
    result = run_cli("sweep", fixed, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "starts over under the changed config" in output(result)
    assert "4 earlier result(s) fit this sweep" in output(result)
    ran = launched(record)
    assert sorted((r["params"]["x"], r["params"]["y"]) for r in ran) == [("3", "10"), ("3", "20")]
    changed = write_config(
        tmp_path, "fourth.yaml", parameters={**params, "x": [1, 2, 3]},
        warm_start=[{"sweep": "exp/s1"}, {"sweep": "exp/s2"}], **keys,
    )  # fmt: skip
    result = run_cli("sweep", changed, cwd=tmp_path)
    assert result.returncode == 2 and "'warm_start'" in output(result), output(result)

    # A run deleted in MLflow since is no earlier result, whichever sweep took it in: its point
    # runs again.
    client = MlflowClient(tracking_uri(tmp_path))
    s2_trials = optuna_trials(optuna_url(tmp_path), "exp/s2")
    gone = next(t for t in s2_trials if "warm_start" in t.user_attrs)  # one s2 took in from s1
    client.delete_run(gone.user_attrs["mlflow_run_id"])
    record.unlink(missing_ok=True)
    _, said = sweep_from(["exp/s2"], "s7", [1, 2, 3])
    assert "5 earlier result(s) fit this sweep and enter it" in said, said
    ran = [(r["params"]["x"], r["params"]["y"]) for r in launched(record)]
    assert ran == [(str(gone.params["x"]), str(gone.params["y"]))]

    # A source deleted since is not needed by the sweeps that took its results in: they resume.
    assert run_cli("delete", old, "--yes", cwd=tmp_path).returncode == 0
    result = run_cli("sweep", new, cwd=tmp_path)
    assert result.returncode == 0 and "already complete" in output(result), output(result)


@pytest.mark.timeout(600)
def test_a_pareto_front_tags_only_this_sweeps_runs_not_the_earlier_results_it_holds(tmp_path):
    """The earlier results a warm start brought in belong to another sweep: they are on this
    sweep's front (its parent lists them) but are not tagged `sweeper.pareto` for it."""
    grid, command = {"x": [1, 2], "y": [10]}, f"python {CONSTRAINED}"
    first = write_config(tmp_path, "first.yaml", sweep_name="c1", command=command, parameters=grid)
    assert run_cli("sweep", first, cwd=tmp_path).returncode == 0
    objectives = [{"name": "score", "direction": "maximize"}, {"name": "latency", "direction": "minimize"}]
    second = write_config(
        tmp_path, "second.yaml", sweep_name="m1", command=command,
        parameters={**grid, "x": [1, 2, 3]}, spec={"metrics": objectives}, warm_start=[{"sweep": "exp/c1"}],
    )  # fmt: skip
    result = run_cli("sweep", second, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    runs = mlflow_runs(tracking_uri(tmp_path))
    earlier = {r.info.run_id for r in by_role(runs, "trial") if r.data.tags["sweeper.sweep"] == "exp/c1"}
    (own,) = [r.info.run_id for r in by_role(runs, "trial") if r.data.tags["sweeper.sweep"] == "exp/m1"]
    (parent,) = [r for r in by_role(runs, "parent") if r.data.tags["sweeper.sweep"] == "exp/m1"]
    assert set(parent.data.tags["sweeper.pareto_run_ids"].split(",")) == earlier | {own}  # all on the front
    tagged = {r.info.run_id for r in runs if r.data.tags.get("sweeper.pareto") == "true"}
    assert tagged == {own}
    # each earlier result records its run's experiment: the parent's description links to it there
    experiment = MlflowClient(tracking_uri(tmp_path)).get_experiment_by_name("exp").experiment_id
    warm = [t for t in optuna_trials(optuna_url(tmp_path), "exp/m1") if "warm_start" in t.user_attrs]
    assert len(warm) == 2 and {t.user_attrs["warm_start_experiment"] for t in warm} == {experiment}


@pytest.mark.timeout(600)
def test_without_an_objective_earlier_runs_that_ended_well_are_not_run_again(tmp_path):
    record = tmp_path / "records.jsonl"
    params = {"x": [1, 2], "record": str(record), "behave": "light:0"}
    old = write_config(tmp_path, "old.yaml", parameters=params, spec=None)
    assert run_cli("sweep", old, cwd=tmp_path).returncode == 0
    record.unlink()
    new = write_config(
        tmp_path, "new.yaml", sweep_name="s2", parameters={**params, "x": [1, 2, 3]}, spec=None,
        warm_start=[{"sweep": "exp/s1"}],
    )  # fmt: skip
    result = run_cli("sweep", new, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "2 earlier result(s) fit this sweep and enter it, 0 did not fit" in output(result)
    assert [r["params"]["x"] for r in launched(record)] == ["3"]
    trials = optuna_trials(optuna_url(tmp_path), "exp/s2")
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)


def test_an_unknown_source_is_exit_2_and_nothing_is_written(tmp_path):
    config = write_config(tmp_path, sweep_name="s9", warm_start=[{"sweep": "exp/nope"}])
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 2, output(result)
    assert "warm_start[0].sweep" in output(result) and "exp/nope" in output(result)
    assert "exp/s9" not in study_names_at(tmp_path)
    missing = write_config(tmp_path, sweep_name="s9", warm_start=[{"runs": "", "experiment": "gone"}])
    result = run_cli("sweep", missing, cwd=tmp_path)
    assert result.returncode == 2 and "no experiment 'gone'" in output(result), output(result)
    log_earlier_runs(tmp_path, 2)
    bad_filter = write_config(
        tmp_path, sweep_name="s9", warm_start=[{"runs": "metrics.score >>> 1", "experiment": "older"}]
    )
    result = run_cli("sweep", bad_filter, cwd=tmp_path)
    assert result.returncode == 2 and "warm_start[0].runs" in output(result), output(result)
    # in the sweep's own experiment, not made yet: the filter is checked all the same
    own_bad = write_config(tmp_path, sweep_name="s9", warm_start=[{"runs": "metrics.score >>> 1"}])
    result = run_cli("sweep", own_bad, cwd=tmp_path)
    assert result.returncode == 2 and "MLflow refused the filter string" in output(result), output(result)
    assert "exp/s9" not in study_names_at(tmp_path)
    assert MlflowClient(tracking_uri(tmp_path)).get_experiment_by_name("exp") is None
    # a good one finds no earlier runs there (the experiment is made with the parent), not an error
    own = write_config(tmp_path, sweep_name="s9", warm_start=[{"runs": "metrics.score > 0"}])
    result = run_cli("sweep", own, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "warm start: 0 earlier result(s) fit this sweep and enter it, 0 did not fit" in output(result)


@pytest.mark.parametrize(
    "source",
    [
        {"runs": "metrics.score > 0", "experiment": "gone"},
        {"runs": "metrics.score >>> 1"},
        {"sweep": "exp/nope"},
    ],
)
def test_a_bad_source_in_a_fresh_directory_creates_no_storage(source, tmp_path):
    """Before any sweep ran there: neither the Optuna storage's file nor the MLflow store's."""
    config = write_config(tmp_path, sweep_name="s9", warm_start=[source], fresh_store=True)
    before = snapshot(tmp_path)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 2 and "warm_start[0]" in the_message(result.stdout, result.stderr), output(
        result
    )
    assert_nothing_written(before, snapshot(tmp_path))


def study_names_at(directory: Path) -> list[str]:
    path = directory / "sweeps" / "optuna.db"
    if not path.exists():
        return []
    return [s.study_name for s in optuna.get_all_study_summaries(storage=optuna_url(directory))]


def log_earlier_runs(directory: Path, count: int) -> list[str]:
    """`count` finished runs in experiment `older` with param x and metric score = -(x - 0.8)^2,
    plus one that does not fit (x outside the range) and one the filter leaves out."""
    client = MlflowClient(tracking_uri(directory))
    experiment = client.create_experiment("older")
    ids = []
    for i, x in enumerate([*(j / (count - 1) for j in range(count)), 7.0, 0.5]):
        run = client.create_run(experiment, tags={"kind": "skip" if i == count + 1 else "probe"})
        client.log_param(run.info.run_id, "x", x)
        client.log_param(run.info.run_id, "y", 10)
        client.log_metric(run.info.run_id, "score", -((x - 0.8) ** 2))
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids[:count]


WARM_TPE = {
    "algorithm": "tpe",
    "seed": 5,
    "parameters": {"x": {"low": 0.0, "high": 1.0}, "y": 10},
    "warm_start": [{"runs": "tags.kind = 'probe'", "experiment": "older"}],
}


def test_tpe_warm_started_from_30_runs_samples_its_first_trial_from_them(tmp_path):
    earlier = log_earlier_runs(tmp_path, 30)
    config = write_config(tmp_path, max_trials=1, **WARM_TPE)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "30 earlier result(s) fit this sweep and enter it, 1 did not fit" in output(result)
    trials = sorted(optuna_trials(optuna_url(tmp_path)), key=lambda t: t.number)
    warm, new = trials[:30], trials[30:]
    assert {t.user_attrs["mlflow_run_id"] for t in warm} == set(earlier)
    assert all(t.user_attrs["warm_start"] == "runs:older:tags.kind = 'probe'" for t in warm)
    (first,) = new
    # The same slot's sampler, asked with those 30 in its history, draws exactly this point;
    # asked with none (TPE's random start-up), it draws another.
    loaded = load_config(config)
    assert first.params["x"] == sample_slot_0(loaded, warm)
    assert first.params["x"] != sample_slot_0(loaded, [])


def test_the_best_earlier_result_is_on_the_parent_from_the_start(tmp_path):
    """The parent shows the sweep's best while it runs, earlier results included: its tag and the
    first point of its best-so-far curve (step 0: no point of this sweep had ended), not only
    once the sweep closes."""
    log_earlier_runs(tmp_path, 30)
    config = write_config(tmp_path, max_trials=5, **WARM_TPE)
    result = run_cli("sweep", config, "--count", "1", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    runs = mlflow_runs(tracking_uri(tmp_path))
    (parent,) = [r for r in runs if r.data.tags.get("sweeper.role") == "parent"]
    assert parent.info.status == "RUNNING" and parent.data.tags.get("sweeper.best_run_id")
    history = MlflowClient(tracking_uri(tmp_path)).get_metric_history(parent.info.run_id, "score")
    assert (history[0].step, history[0].value) == (0, -((23 / 29 - 0.8) ** 2))  # x = 23/29, the closest
    # an agent joining later says how many earlier results the sweep holds, not that none fit
    joined = run_cli("sweep", config, "--count", "1", cwd=tmp_path)
    assert joined.returncode == 0, output(joined)
    said = output(joined)
    assert ": warm start: 30 earlier result(s) in this sweep, entered when it was created" in said
    assert "(they use none of the budget)" in said  # TPE: no point of the budget is held
    assert "fit this sweep" not in output(joined)
    quiet = run_cli("sweep", config, "--count", "1", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and "warm start" not in output(quiet), output(quiet)  # only the summary


def sample_slot_0(config, history) -> float:
    study = optuna.create_study(direction="maximize", sampler=PointSource(config).sampler(0))
    study.add_trials(history)
    return suggest_point(study.ask(), config.space)["x"]


@pytest.mark.timeout(900)
def test_three_agents_starting_together_enter_the_earlier_results_once(tmp_path):
    log_earlier_runs(tmp_path, 30)
    config = write_config(tmp_path, max_trials=2, **WARM_TPE)
    agents = [start_cli("sweep", config, cwd=tmp_path) for _ in range(3)]
    outputs = [agent.communicate(timeout=240)[0] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0, 0], outputs
    assert sum("30 earlier result(s) fit" in text for text in outputs) == 1, outputs
    trials = optuna_trials(optuna_url(tmp_path))
    warm = [t for t in trials if "warm_start" in t.user_attrs]
    assert len(warm) == 30 and len({t.user_attrs["mlflow_run_id"] for t in warm}) == 30
    assert len(trials) == 32 and all(t.state.name == "COMPLETE" for t in trials)
