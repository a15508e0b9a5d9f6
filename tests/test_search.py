"""The search through the real CLI: conditional parameters, sensitivity, several objectives and a
target, with real trial processes (tests/project/search_trial.py) on real storages; and the
conditional grid and sensitivity sweeps shared by 3 agents on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import (
    PROJECT,
    kill_process_tree,
    mlflow_runs,
    optuna_trials,
    read_records,
    run_cli,
    write_config,
)
from test_distributed import agent_configs, check_agents, close_optuna, open_optuna, outputs, run_agents

TRIAL = PROJECT / "search_trial.py"
OPTUNA = "sqlite:///optuna.db"
MLFLOW = "sqlite:///mlflow.db"

CONDITIONAL = {
    "opt": ["sgd", "adam"],
    "momentum": {"values": [0.0, 0.9], "when": {"opt": "sgd"}},
    "beta": {"values": [0.9], "when": {"opt": "adam"}},
    "nesterov": {"value": 1, "when": {"opt": "sgd"}},  # a fixed value that exists only with sgd
}
CONDITIONAL_POINTS = [
    {"opt": "sgd", "momentum": "0.0", "nesterov": "1"},
    {"opt": "sgd", "momentum": "0.9", "nesterov": "1"},
    {"opt": "adam", "beta": "0.9"},
]
# sensitivity around x=2, y=10: x takes 0 and 4 (3 points), y takes 20 and 30: 1 + 2 + 2 trials
SENSITIVITY = {"x": {"low": 0, "high": 4, "type": "int"}, "y": [10, 20, 30], "z": 0}
SENSITIVITY_POINTS = [
    {"x": "2", "y": "10", "z": "0"},
    {"x": "0", "y": "10", "z": "0"},
    {"x": "4", "y": "10", "z": "0"},
    {"x": "2", "y": "20", "z": "0"},
    {"x": "2", "y": "30", "z": "0"},
]


def keys(record: Path, parameters: dict, **extra) -> dict:
    return {
        "command": f"python {TRIAL}",
        "parameters": {**parameters, "record": str(record)},
        "optuna_storage": OPTUNA,
        "mlflow_storage": MLFLOW,
        **extra,
    }


def sweep(tmp_path: Path, *args: str, expect: int = 0, **config) -> str:
    path = write_config(tmp_path, **config)
    result = run_cli("sweep", path, *args, cwd=tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode == expect, text
    assert "Traceback" not in text, text
    return text


def executed(record: Path) -> list[dict]:
    return [r["params"] for r in read_records(record)]


def as_set(points: list[dict]) -> Counter:
    return Counter(tuple(sorted(p.items())) for p in points)


def runs_by_role(uri: str) -> tuple[dict, list]:
    runs = mlflow_runs(uri)
    parents = [r for r in runs if r.data.tags.get("sweeper.role") == "parent"]
    assert len(parents) == 1
    return parents[0], [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]


def without_record(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "record"}


# ---- the examples ------------------------------------------------------------------------------

EXAMPLES = sorted((PROJECT.parent.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_is_valid(path):
    from mlflow_sweeper.config import load_config
    from mlflow_sweeper.search.algorithms import ALGORITHMS, PointSource

    algorithm = yaml.safe_load(path.read_text())["algorithm"]
    if ALGORITHMS[algorithm].missing_requirement():
        pytest.skip(f"{algorithm} needs an extra that is not installed")
    config = load_config(path)
    assert PointSource(config).budget > 0


def test_the_examples_cover_every_search_feature():
    names = {p.stem for p in EXAMPLES}
    assert {"conditional", "multi_objective", "early_stopping", "target", "sensitivity"} <= names
    assert {"cmaes", "gp", "qmc"} <= names


# ---- conditional parameters -------------------------------------------------------------------


@pytest.mark.extended
def test_conditional_grid_runs_each_valid_point_once_and_passes_only_active_params(tmp_path):
    record = tmp_path / "records.jsonl"
    sweep(tmp_path, **keys(record, CONDITIONAL, spec={"metric": "score", "direction": "maximize"}))

    assert as_set(executed(record)) == as_set(CONDITIONAL_POINTS)
    trials = optuna_trials(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert Counter(t.state.name for t in trials) == {"COMPLETE": 3}
    swept = [{k: str(v) for k, v in t.params.items()} for t in trials]
    fixed = "nesterov"  # a fixed value: passed and logged, never an Optuna parameter
    assert as_set(swept) == as_set([{k: v for k, v in p.items() if k != fixed} for p in CONDITIONAL_POINTS])
    parent, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED"
    assert as_set([without_record(r.data.params) for r in runs]) == as_set(CONDITIONAL_POINTS)


def test_a_sampler_over_a_conditional_space_never_passes_an_inactive_param(tmp_path):
    record = tmp_path / "records.jsonl"
    parameters = {
        "opt": ["sgd", "adam"],
        "momentum": {"low": 0.0, "high": 0.9, "when": {"opt": "sgd"}},
        "beta": {"low": 0.8, "high": 0.99, "when": {"opt": ["adam"]}},
    }
    sweep(
        tmp_path,
        "-j",
        "2",
        **keys(record, parameters, algorithm="tpe", max_trials=6, seed=1, spec={"metric": "score"}),
    )

    points = executed(record)
    assert len(points) == 6
    assert {p["opt"] for p in points} == {"sgd", "adam"}, points
    for point in points:
        expected = {"opt", "momentum"} if point["opt"] == "sgd" else {"opt", "beta"}
        assert set(point) == expected, point
    for trial in optuna_trials(f"sqlite:///{tmp_path / 'optuna.db'}"):
        assert trial.state.name == "COMPLETE"
        assert set(trial.params) == ({"opt", "momentum"} if trial.params["opt"] == "sgd" else {"opt", "beta"})
    _, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for run in runs:
        params = without_record(run.data.params)
        assert set(params) == ({"opt", "momentum"} if params["opt"] == "sgd" else {"opt", "beta"})


# ---- sensitivity -----------------------------------------------------------------------------


def test_sensitivity_runs_its_plan_and_puts_the_spread_per_parameter_on_the_parent(tmp_path):
    record = tmp_path / "records.jsonl"
    config = keys(
        record,
        SENSITIVITY,
        algorithm="sensitivity",
        base={"x": 2},
        points=3,
        max_trials=50,  # out of habit: the plan's own length wins, and the agent says so
        spec={"metric": "score", "direction": "maximize"},
    )
    text = sweep(tmp_path, **config)

    assert "5 trials in the budget" in text, text
    assert "max_trials (50) does not apply to algorithm 'sensitivity': its budget, 5" in text, text
    assert as_set(executed(record)) == as_set(SENSITIVITY_POINTS)
    parent, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED" and len(runs) == 5
    # score = x + y + z: x moves it by 4 (0..4), y by 20 (10..30)
    assert parent.data.metrics["sensitivity/x"] == pytest.approx(4.0)
    assert parent.data.metrics["sensitivity/y"] == pytest.approx(20.0)
    assert "sensitivity/z" not in parent.data.metrics  # fixed: not swept

    # `base` and `points` belong to sensitivity only
    bad = write_config(tmp_path / "bad", **keys(record, SENSITIVITY, algorithm="grid", points=3))
    result = run_cli("sweep", bad, cwd=tmp_path / "bad")
    assert result.returncode == 2 and "points" in result.stderr + result.stdout
    assert not (tmp_path / "bad" / "optuna.db").exists()


# ---- several objectives ----------------------------------------------------------------------


def test_several_objectives_give_values_pareto_tags_and_the_front_on_the_parent(tmp_path):
    record = tmp_path / "records.jsonl"
    metrics = [{"name": "m1", "direction": "maximize"}, {"name": "m2", "direction": "minimize"}]
    sweep(tmp_path, **keys(record, {"x": [1, 2, 3], "y": [1, 2]}, spec={"metrics": metrics}))

    study = optuna.load_study(study_name="exp/s1", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    for trial in trials:
        x, y = trial.params["x"], trial.params["y"]
        assert trial.values == [x, x * x + y]
    front_runs = {t.user_attrs["mlflow_run_id"] for t in trials if t.params["y"] == 1}
    assert {t.user_attrs["mlflow_run_id"] for t in study.best_trials} == front_runs

    parent, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED"
    assert set(parent.data.tags["sweeper.pareto_run_ids"].split(",")) == front_runs
    assert "sweeper.best_run_id" not in parent.data.tags
    tagged = {r.info.run_id for r in runs if r.data.tags.get("sweeper.pareto") == "true"}
    assert tagged == front_runs

    status = run_cli("status", tmp_path / "sweep.yaml", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    entry = json.loads(status.stdout)["sweeps"][0]
    assert entry["best"] is None
    assert {p["run_id"] for p in entry["pareto"]} == front_runs
    assert all(p["values"] == [p["params"]["x"], p["params"]["x"] ** 2 + 1] for p in entry["pareto"])
    text = run_cli("status", tmp_path / "sweep.yaml", cwd=tmp_path).stdout
    assert "pareto front: 3 trials" in text, text
    assert "m1=3, m2=10: x=3, y=1" in text, text


@pytest.mark.parametrize(
    "extra, key",
    [
        ({"spec": {"metrics": [{"name": "m1"}, {"name": "m2"}], "target": 1.0}}, "spec.target"),
        (
            {"spec": {"metrics": [{"name": "m1"}, {"name": "m2"}]}, "early_stopping": {"pruner": "median"}},
            "early_stopping",
        ),
    ],
    ids=["target", "early_stopping"],
)
def test_target_or_early_stopping_with_several_objectives_is_a_config_error(tmp_path, extra, key):
    path = write_config(tmp_path, optuna_storage=OPTUNA, **extra)
    result = run_cli("sweep", path, cwd=tmp_path)
    text = result.stderr + result.stdout
    assert result.returncode == 2 and key in text and "Traceback" not in text, text
    assert not (tmp_path / "optuna.db").exists()


# ---- target ---------------------------------------------------------------------------------


@pytest.mark.extended
def test_a_trial_reaching_the_target_stops_new_trials_and_the_sweep_is_complete(tmp_path):
    record = tmp_path / "records.jsonl"
    config = keys(
        record,
        {"x": [1, 2, 3, 4, 5, 6], "y": [0]},
        spec={"metric": "score", "direction": "maximize", "target": 2},
    )
    text = sweep(tmp_path, **config)

    assert [p["x"] for p in executed(record)] == ["1", "2"], text
    assert "reached the target" in text
    parent, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED" and len(runs) == 2
    assert parent.data.tags["sweeper.stopped"] == "target"
    assert parent.data.metrics["score"] == 2.0

    status = run_cli("status", tmp_path / "sweep.yaml", "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["sweeps"][0]["remaining"] == 0, status.stdout
    assert json.loads(status.stdout)["sweeps"][0]["stopped"] == "target"
    text = run_cli("status", tmp_path / "sweep.yaml", cwd=tmp_path).stdout
    assert "stopped early: a trial reached the target" in text, text

    again = sweep(tmp_path, **config)
    assert "already complete" in again and "started" not in again
    assert len(executed(record)) == 2
    assert len(mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")) == 3

    # the target raised: the sweep goes on until a trial reaches the new one
    config["spec"]["target"] = 4
    further = sweep(tmp_path, **config)
    assert [p["x"] for p in executed(record)] == ["1", "2", "3", "4"], further
    parent, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED" and parent.data.tags["sweeper.stopped"] == "target"
    # out of reach: the budget runs out, and the sweep did not stop early
    config["spec"]["target"] = 100
    sweep(tmp_path, **config)
    assert [p["x"] for p in executed(record)] == ["1", "2", "3", "4", "5", "6"]
    parent, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED" and "sweeper.stopped" not in parent.data.tags
    status = run_cli("status", tmp_path / "sweep.yaml", "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["sweeps"][0]["stopped"] is None


# ---- early stopping ----------------------------------------------------------------------------


@pytest.mark.extended  # in-process: tests/test_trial_path.py
def test_early_stopping_prunes_a_bad_trial_which_is_killed_tagged_pruned_and_not_retried(tmp_path):
    record = tmp_path / "records.jsonl"
    # curve = x * (step + 1) over 8 steps, 0.4 s apart: x=3 passes 5 at step 1 and is pruned;
    # x=0.5 stays under 5 and completes with its last value, 4.
    config = keys(
        record,
        {"x": [0.5, 3], "steps": 8, "pause": 0.4},
        spec={"metric": "curve", "direction": "minimize"},
        early_stopping={"pruner": "threshold", "options": {"upper": 5.0}, "interval": 0.3},
        max_retries=2,
    )
    text = sweep(tmp_path, **config)

    assert [p["x"] for p in executed(record)] == ["0.5", "3"], text  # the pruned one never re-ran
    assert "pruned" in text
    trials = {t.params["x"]: t for t in optuna_trials(f"sqlite:///{tmp_path / 'optuna.db'}")}
    assert trials[0.5].state.name == "COMPLETE" and trials[0.5].value == 4.0
    pruned = trials[3]
    assert pruned.state.name == "PRUNED"
    assert pruned.intermediate_values and pruned.value == pruned.intermediate_values[pruned.last_step] > 5
    assert len(pruned.intermediate_values) < 8  # stopped before its last step
    assert len(trials[0.5].intermediate_values) == 8  # every step reported before it completed
    parent, runs = runs_by_role(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert parent.info.status == "FINISHED"
    by_run = {r.info.run_id: r for r in runs}
    killed = by_run[pruned.user_attrs["mlflow_run_id"]]
    assert killed.info.status == "KILLED" and killed.data.tags.get("sweeper.pruned") == "true"
    done = by_run[trials[0.5].user_attrs["mlflow_run_id"]]
    assert done.info.status == "FINISHED" and "sweeper.pruned" not in done.data.tags


# ---- 3 agents, SQLite and PostgreSQL ------------------------------------------------------------


@pytest.fixture
def processes():
    """The agents a test starts; any still alive at the end is killed with its tree."""
    started: list = []
    yield started
    for proc in started:
        if proc.poll() is None:
            kill_process_tree(proc)


def storages(kind: str, shared: Path, request) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite:///{shared / 'optuna.db'}", f"sqlite:///{shared / 'mlflow.db'}"
    make = request.getfixturevalue("postgres_db")
    return make("optuna"), make("mlflow")


def check_shared_sweep(agents, optuna_url: str, mlflow_uri: str, record: Path, expected: list[dict]) -> None:
    """Every point of `expected` executed exactly once, COMPLETE once, one FINISHED parent."""
    check_agents(agents)
    points = executed(record)
    assert as_set(points) == as_set(expected), f"executed {points}\n" + outputs(agents)
    storage = open_optuna(optuna_url)
    try:
        trials = storage.get_all_trials(storage.get_study_id_from_name("exp/s1"), deepcopy=False)
    finally:
        close_optuna(storage)
    assert Counter(t.state.name for t in trials) == {"COMPLETE": len(expected)}
    parent, runs = runs_by_role(mlflow_uri)
    assert parent.info.status == "FINISHED"
    assert Counter(r.info.status for r in runs) == {"FINISHED": len(expected)}
    assert as_set([without_record(r.data.params) for r in runs]) == as_set(expected)


SHARED = [
    pytest.param("sqlite", id="sqlite", marks=pytest.mark.extended),  # the same on SQLite
    pytest.param("postgres", id="postgres", marks=pytest.mark.server),
]


@pytest.mark.parametrize("kind", SHARED)
def test_three_agents_share_a_conditional_grid_without_duplicates(tmp_path, request, processes, kind):
    shared = tmp_path / "shared"
    shared.mkdir()
    record = shared / "records.jsonl"
    optuna_url, mlflow_uri = storages(kind, shared, request)
    parameters = {**CONDITIONAL, "lr": [0.1, 0.01]}  # 6 points
    config = keys(
        record, parameters, optuna_storage=optuna_url, mlflow_storage=mlflow_uri, spec={"metric": "score"}
    )
    agents = agent_configs(tmp_path, 3, **config)
    run_agents(agents, processes, "-j", "2", root=tmp_path)
    expected = [{**p, "lr": lr} for p in CONDITIONAL_POINTS for lr in ("0.1", "0.01")]
    check_shared_sweep(agents, optuna_url, mlflow_uri, record, expected)


@pytest.mark.parametrize("kind", SHARED)
# One agent: test_sensitivity_runs_its_plan...; agents sharing a plan: the conditional grid's.
@pytest.mark.extended
def test_three_agents_share_a_sensitivity_sweep_without_duplicates(tmp_path, request, processes, kind):
    shared = tmp_path / "shared"
    shared.mkdir()
    record = shared / "records.jsonl"
    optuna_url, mlflow_uri = storages(kind, shared, request)
    config = keys(
        record,
        SENSITIVITY,
        algorithm="sensitivity",
        base={"x": 2},
        points=3,
        optuna_storage=optuna_url,
        mlflow_storage=mlflow_uri,
        spec={"metric": "score", "direction": "maximize"},
    )
    agents = agent_configs(tmp_path, 3, **config)
    run_agents(agents, processes, "-j", "2", root=tmp_path)
    check_shared_sweep(agents, optuna_url, mlflow_uri, record, SENSITIVITY_POINTS)
    parent, _ = runs_by_role(mlflow_uri)
    assert parent.data.metrics["sensitivity/y"] == pytest.approx(20.0)


@pytest.mark.parametrize("kind", SHARED)
def test_three_agents_stop_at_the_target_and_prune_without_duplicates(tmp_path, request, processes, kind):
    """A target and early stopping across agents. curve = x * (step + 1) over 4 steps: x=2 ends at
    8, the target; x >= 5 passes the threshold 9 at step 1 and is pruned; the others end below
    both."""
    shared = tmp_path / "shared"
    shared.mkdir()
    record = shared / "records.jsonl"
    optuna_url, mlflow_uri = storages(kind, shared, request)
    config = keys(
        record,
        {"x": [1, 5, 6, 2, 7, 8, 1.5, 9, 10, 1.2, 1.1, 1.3], "steps": 4, "pause": 0.5},
        optuna_storage=optuna_url,
        mlflow_storage=mlflow_uri,
        spec={"metric": "curve", "direction": "maximize", "target": 8},
        early_stopping={"pruner": "threshold", "options": {"upper": 9.0}, "interval": 0.2},
    )
    agents = agent_configs(tmp_path, 3, **config)
    run_agents(agents, processes, "-j", "1", root=tmp_path)
    check_agents(agents)

    points = [p["x"] for p in executed(record)]
    assert len(points) == len(set(points)) < 12, f"executed {points}\n" + outputs(agents)
    storage = open_optuna(optuna_url)
    try:
        trials = storage.get_all_trials(storage.get_study_id_from_name("exp/s1"), deepcopy=False)
        reached = storage.get_study_system_attrs(storage.get_study_id_from_name("exp/s1"))
    finally:
        close_optuna(storage)
    assert "sweeper:target_reached" in reached
    assert len(trials) == len(points) and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert any(t.state.name == "COMPLETE" and t.value >= 8 for t in trials)
    for trial in trials:
        assert (trial.state.name == "PRUNED") == (trial.params["x"] >= 5), trial
    parent, runs = runs_by_role(mlflow_uri)
    assert parent.info.status == "FINISHED" and parent.data.tags.get("sweeper.stopped") == "target"
    for run in runs:
        pruned = run.data.tags.get("sweeper.pruned") == "true"
        assert run.info.status == ("KILLED" if pruned else "FINISHED")
    assert sum(r.data.tags.get("sweeper.pruned") == "true" for r in runs) == sum(
        t.state.name == "PRUNED" for t in trials
    )


# ---- the Pareto front, as the close and each settled trial compute it ------------------------------


def _trial(number: int, values: list[float] | None, state=optuna.trial.TrialState.COMPLETE):
    return optuna.trial.FrozenTrial(
        number=number, state=state, value=None, values=values, datetime_start=None, datetime_complete=None,
        params={}, distributions={}, user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=number,
    )  # fmt: skip


def test_pareto_front_and_the_change_one_trial_makes():
    from mlflow_sweeper.coordination.tallies import front_change, pareto_front

    max_min = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    trials = [
        _trial(0, [1.0, 2.0]),
        _trial(1, [2.0, 5.0]),
        _trial(2, [2.0, 6.0]),  # dominated by 1
        _trial(3, [1.0, 2.0]),  # equal to 0: both stay
        _trial(4, None, optuna.trial.TrialState.FAIL),
    ]
    assert [t.number for t in pareto_front(trials, max_min)] == [0, 1, 3]
    assert front_change(trials, 2, max_min) == (False, [])
    # a new trial better in both objectives than 1 (and than 2, already off the front)
    trials.append(_trial(5, [3.0, 4.0]))
    on_front, pushed = front_change(trials, 5, max_min)
    assert on_front and [t.number for t in pushed] == [1]
    assert [t.number for t in pareto_front(trials, max_min)] == [0, 3, 5]


def test_a_target_mark_holds_only_while_a_feasible_result_reaches_the_configs_target():
    """The mark was made under the target of its time: a raised target lets the sweep go on. A
    trial is marked before it is COMPLETE: the mark's own value tells another agent at once."""
    from types import SimpleNamespace

    from mlflow_sweeper.config.objective import Objective
    from mlflow_sweeper.coordination.names import TARGET_REACHED
    from mlflow_sweeper.coordination.store import RetryingStorage
    from mlflow_sweeper.coordination.target import TargetMark

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    factory = SimpleNamespace(study_id=storage.get_study_id_from_name(study.study_name))

    def mark(target: float | None) -> TargetMark:
        return TargetMark(RetryingStorage(storage), Objective("maximize", "score", target=target), factory)

    first = mark(2.0)
    assert not first.reached()
    first.note(1, 2.0, None)  # trial 1 is not COMPLETE yet: another agent stops claiming all the same
    assert first.reached() and mark(2.0).reached() and mark(1.5).reached()
    study.add_trial(optuna.trial.create_trial(value=2.0))
    raised = mark(3.0)
    assert not raised.reached() and not mark(None).reached()
    study.add_trial(optuna.trial.create_trial(value=3.5))  # completed before the target was raised
    assert mark(3.0).reached() and not mark(4.0).reached()
    raised.note(3, 3.2, None)
    assert raised.reached() and mark(3.1).reached()
    storage.set_study_system_attr(factory.study_id, TARGET_REACHED, 1)  # an older sweeper's mark
    assert mark(10.0).reached()
