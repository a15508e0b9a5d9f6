"""`spec.constraints` in process: parsing, the values stored with each trial, the samplers that
read them, and the best trial that ignores infeasible ones. Real Optuna storages, no MLflow."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.storages import InMemoryStorage

from mlflow_sweeper.config import load_config
from mlflow_sweeper.constraints import (
    Constraint,
    is_feasible,
    judge,
    parse_constraints,
    trial_attrs,
)
from mlflow_sweeper.coordination import SweepStudy, tallies
from mlflow_sweeper.errors import ConfigError
from mlflow_sweeper.search.algorithms import PointSource

optuna.logging.set_verbosity(optuna.logging.WARNING)


def config_file(tmp_path, **keys):
    data = {
        "experiment": "exp",
        "sweep_name": "c1",
        "command": "python train.py",
        "parameters": {"x": {"low": 0.0, "high": 1.0}, "y": {"low": 0.0, "high": 1.0}},
        "algorithm": "tpe",
        "seed": 1,
        "max_trials": 60,
        "spec": {"metric": "score", "direction": "maximize", "constraints": ["cost <= 0.3"]},
    }
    data.update(keys)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_constraints_parse_every_operator():
    parsed = parse_constraints(["latency_ms <= 50", "size_mb < 10", "acc>=0.9", "val/loss > -1e3"])
    assert parsed == (
        Constraint("latency_ms", "<=", 50.0),
        Constraint("size_mb", "<", 10.0),
        Constraint("acc", ">=", 0.9),
        Constraint("val/loss", ">", -1000.0),
    )
    # a metric quoted as an MLflow filter string quotes it (`runs:` in warm_start) is the metric
    assert parse_constraints(["`val/acc` >= 0.9"]) == (Constraint("val/acc", ">=", 0.9),)
    # Optuna's convention: feasible when <= 0; a strict bound met exactly is violated
    assert parsed[0].violation(50) == 0 and parsed[0].violation(60) == 10
    assert parsed[1].violation(10) > 0 and parsed[1].violation(9) < 0
    assert parsed[2].violation(0.95) < 0 and parsed[2].violation(0.8) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("constraints", "key"),
    [
        (["latency_ms == 50"], "spec.constraints[0]"),
        (["latency_ms <= 50", "size <= fast"], "spec.constraints[1]"),
        ("latency_ms <= 50", "spec.constraints"),
        ([5], "spec.constraints[0]"),
        (["x <= 1", "x <= 1"], "spec.constraints[1]"),
        (["latency_ms =< 5"], "spec.constraints[0]"),
        (["`latency_ms <= 5"], "spec.constraints[0]"),  # a backtick that encloses nothing
        (["late`ncy <= 5"], "spec.constraints[0]"),
        (["a <= b <= 5"], "spec.constraints[0]"),
        (["lat >< 5"], "spec.constraints[0]"),
    ],
)
def test_a_malformed_constraint_is_a_config_error_naming_file_and_key(tmp_path, constraints, key):
    path = config_file(tmp_path, spec={"metric": "score", "constraints": constraints})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == 2
    assert str(path.name) in str(caught.value) and key in str(caught.value)


def test_constraints_join_the_fingerprint(tmp_path):
    with_constraint = load_config(config_file(tmp_path))
    assert with_constraint.fingerprint()["constraints"] == ["cost <= 0.3"]
    plain = load_config(config_file(tmp_path, spec={"metric": "score", "direction": "maximize"}))
    assert "constraints" not in plain.fingerprint()


def test_a_missing_constraint_metric_fails_like_a_missing_objective():
    judgement = judge(parse_constraints(["latency <= 5"]), {"score": 1.0})
    assert judgement.missing == ("latency",) and not judgement.feasible


def run_toy(config, storage, objective):
    """Claim and complete every slot in process, as an agent's workers would."""
    study = SweepStudy(storage, config, PointSource(config), "agent-1")
    study.create_or_find()
    constraints = config.objective.constraints
    while (work := study.claim()) is not None:
        metrics = objective(work.params)
        names = config.objective.names
        value = [metrics[n] for n in names] if config.objective.multi else metrics["score"]
        study.complete(work, value, trial_attrs(judge(constraints, metrics)))
    return study


def toy(params):
    """Maximize x + y with x's cost capped: the unconstrained optimum (1, 1) is infeasible."""
    return {"score": params["x"] + params["y"], "cost": params["x"]}


def test_tpe_with_constraints_best_is_feasible_and_learns_the_feasible_region(tmp_path):
    config = load_config(config_file(tmp_path))
    study = run_toy(config, InMemoryStorage(), toy)
    trials = sorted(study.trials(), key=lambda t: t.number)
    assert len(trials) == 60
    # the values Optuna's samplers read are stored with each trial
    assert all(set(t.constraints) == {"cost <= 0.3"} for t in trials)
    feasible = [t for t in trials if is_feasible(t)]
    infeasible = [t for t in trials if not is_feasible(t)]
    assert feasible and infeasible
    best = study.best_trial()
    assert best is not None and best.params["x"] <= 0.3
    assert best.value == max(t.value for t in feasible)
    assert max(t.value for t in infeasible) > best.value  # the unconstrained best was infeasible
    assert study.progress().best.number == best.number
    first, second = trials[:30], trials[30:]
    share = [sum(is_feasible(t) for t in half) / len(half) for half in (first, second)]
    assert share[1] > share[0], share


def test_no_feasible_trial_means_no_best(tmp_path):
    config = load_config(config_file(tmp_path, max_trials=5, spec={
        "metric": "score", "direction": "maximize", "constraints": ["cost < -1"]
    }))
    study = run_toy(config, InMemoryStorage(), toy)
    assert len(study.trials()) == 5
    assert study.best_trial() is None and study.progress().best is None


@pytest.mark.parametrize("algorithm", ["nsga2", "tpe"])
def test_constraints_with_several_objectives_keep_the_front_feasible(tmp_path, algorithm):
    spec = {
        "metrics": [{"name": "score", "direction": "maximize"}, {"name": "cost", "direction": "minimize"}],
        "constraints": ["cost <= 0.5"],
    }
    config = load_config(config_file(tmp_path, algorithm=algorithm, max_trials=24, spec=spec))
    study = run_toy(config, InMemoryStorage(), toy)
    trials = study.trials()
    assert any(not is_feasible(t) for t in trials)
    directions = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    front = tallies.pareto_front(trials, directions)
    assert front and all(t.params["x"] <= 0.5 for t in front)
    # the sampler was built constraint-aware
    sampler = study.source.sampler(99)
    assert sampler._constraints_func is not None


def test_a_constrained_sampler_says_nothing_of_the_options_the_sweeper_passes(tmp_path, caplog, monkeypatch):
    """Optuna 5 deprecates `constraints_func`, which the sweeper (not the user) passes: no warning."""
    from mlflow_sweeper.search.algorithms import base

    monkeypatch.setattr(base, "_WARNED", set())  # each warning is logged once per process
    spec = {"metric": "score", "direction": "maximize", "constraints": ["cost <= 0.5"]}
    config = load_config(config_file(tmp_path, algorithm="tpe", max_trials=4, spec=spec))
    with caplog.at_level("WARNING"):
        study = run_toy(config, InMemoryStorage(), toy)
        sampler = study.source.sampler(7)
    assert sampler._constraints_func is not None
    assert "constraints_func" not in caplog.text


def test_trials_csv_says_which_trials_are_feasible(tmp_path):
    import csv

    from mlflow_sweeper.report.table import write_trials_csv

    config = load_config(config_file(tmp_path, max_trials=12))
    trials = run_toy(config, InMemoryStorage(), toy).trials()
    rows = list(csv.DictReader(write_trials_csv(tmp_path / "t.csv", trials, config.objective).open()))
    by_number = {t.number: t for t in trials}
    assert {row["feasible"] for row in rows} == {"true", "false"}
    assert all(row["feasible"] == str(is_feasible(by_number[int(row["number"])])).lower() for row in rows)
    plain = load_config(config_file(tmp_path, spec={"metric": "score", "direction": "maximize"}))
    header = write_trials_csv(tmp_path / "p.csv", trials, plain.objective).read_text().splitlines()[0]
    assert "feasible" not in header.split(",")
