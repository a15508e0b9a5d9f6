"""One-at-a-time sensitivity: the plan (base point, then each parameter alone), its budget,
the checks of `base` and `points`, and the spread per parameter."""

from __future__ import annotations

import math

import optuna
import pytest

from mlflow_sweeper.search.sensitivity import (
    default_base,
    parse_sensitivity,
    sensitivity_plan,
    sensitivity_spread,
    sweep_values,
    unswept_at_base,
    varied_parameter,
)
from mlflow_sweeper.search.space import SearchSpace, SpaceError


def parse(parameters: dict) -> SearchSpace:
    return SearchSpace.parse(parameters)


# ---- values swept per parameter ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, points, expected",
    [
        (["a", "b", "c"], 5, ("a", "b", "c")),
        ({"values": [1, 2]}, 3, (1, 2)),
        ({"low": 0.0, "high": 1.0}, 5, (0.0, 0.25, 0.5, 0.75, 1.0)),
        ({"low": -1.0, "high": 1.0}, 2, (-1.0, 1.0)),
        ({"low": 1, "high": 9, "type": "int"}, 5, (1, 3, 5, 7, 9)),
        ({"low": 1, "high": 4, "type": "int"}, 5, (1, 2, 3, 4)),  # rounded, then deduplicated
        ({"low": 0, "high": 10, "type": "int", "step": 5}, 5, (0, 5, 10)),
        ({"low": 0.0, "high": 1.0, "step": 0.25}, 3, (0.0, 0.5, 1.0)),
        ({"low": 1, "high": 1000, "type": "int", "log": True}, 4, (1, 10, 100, 1000)),
        ({"low": 1, "high": 3, "type": "int", "log": True}, 5, (1, 2, 3)),
    ],
)
def test_sweep_values(spec, points, expected):
    axis = parse({"p": spec}).axes["p"]
    values = sweep_values(axis, points)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


def test_log_range_is_log_spaced_with_exact_ends():
    axis = parse({"wd": {"low": 1e-4, "high": 1.0, "log": True}}).axes["wd"]
    values = sweep_values(axis, 5)
    assert values[0] == 1e-4 and values[-1] == 1.0
    assert [math.log10(v) for v in values] == pytest.approx([-4, -3, -2, -1, 0])


# ---- default base ------------------------------------------------------------------------------


def test_default_base_first_value_and_midpoints():
    space = parse(
        {
            "opt": ["sgd", "adam"],
            "x": {"low": 0.0, "high": 0.5},
            "n": {"low": 1, "high": 4, "type": "int"},  # midpoint 2.5 rounds half up
            "m": {"low": 2, "high": 10, "type": "int", "step": 4},
            "f": {"low": 0.0, "high": 1.0, "step": 0.3},  # 0.5 is snapped onto the steps
            "wd": {"low": 1e-6, "high": 1e-2, "log": True},
            "k": {"low": 1, "high": 100, "type": "int", "log": True},
            "seed": 0,
        }
    )
    base = default_base(space)
    assert base["opt"] == "sgd"
    assert base["x"] == 0.25
    assert base["n"] == 3
    assert base["m"] == 6
    assert base["f"] == 0.6
    assert base["wd"] == pytest.approx(1e-4)
    assert base["k"] == 10 and type(base["k"]) is int
    assert "seed" not in base


# ---- the plan ----------------------------------------------------------------------------------


def budget_formula(space: SearchSpace, points: int) -> int:
    return 1 + sum(len(sweep_values(axis, points)) - 1 for axis in space.axes.values())


def test_plan_of_lists():
    space = parse({"a": [1, 2, 3], "b": ["x", "y"], "single": [7], "seed": 0})
    plan = sensitivity_plan(space, None, 5)
    assert plan == [
        {"a": 1, "b": "x", "single": 7},
        {"a": 2, "b": "x", "single": 7},
        {"a": 3, "b": "x", "single": 7},
        {"a": 1, "b": "y", "single": 7},
    ]
    assert len(plan) == budget_formula(space, 5) == 1 + 2 + 1 + 0


def test_plan_of_ranges_and_budget():
    space = parse(
        {
            "lr": {"low": 1e-4, "high": 1.0, "log": True},
            "dropout": {"low": 0.0, "high": 0.5},
            "layers": {"low": 1, "high": 9, "type": "int"},
            "opt": ["sgd", "adam"],
        }
    )
    plan = sensitivity_plan(space, None, 5)
    base = plan[0]
    assert base["lr"] == pytest.approx(1e-2) and base["dropout"] == 0.25 and base["layers"] == 5
    assert base["opt"] == "sgd"
    assert len(plan) == budget_formula(space, 5) == 1 + 4 + 4 + 4 + 1
    by_parameter: dict[str, list] = {}
    for point in plan[1:]:
        name = varied_parameter(base, point)
        assert name is not None, point  # every other point moves exactly one parameter
        by_parameter.setdefault(name, []).append(point[name])
    assert list(by_parameter) == ["lr", "dropout", "layers", "opt"]  # config order
    assert by_parameter["lr"] == pytest.approx([1e-4, 1e-3, 1e-1, 1.0])
    assert by_parameter["dropout"] == [0.0, 0.125, 0.375, 0.5]
    assert by_parameter["layers"] == [1, 3, 7, 9]
    assert by_parameter["opt"] == ["adam"]


def test_plan_around_a_given_base():
    space = parse({"lr": {"low": 0.0, "high": 1.0}, "bs": [16, 32, 64]})
    base, points = parse_sensitivity(space, {"lr": 0.1, "bs": 32}, 3)
    plan = sensitivity_plan(space, base, points)
    assert plan == [
        {"lr": 0.1, "bs": 32},
        {"lr": 0.0, "bs": 32},
        {"lr": 0.5, "bs": 32},
        {"lr": 1.0, "bs": 32},  # the base is not one of the 3 values: all 3 are run
        {"lr": 0.1, "bs": 16},
        {"lr": 0.1, "bs": 64},
    ]


def test_plan_points_are_recordable_in_optuna():
    space = parse(
        {
            "lr": {"low": 1e-5, "high": 1e-1, "log": True},
            "n": {"low": 2, "high": 64, "type": "int", "log": True},
            "f": {"low": 0.0, "high": 1.0, "step": 0.1},
            "opt": ["sgd", "adam"],
        }
    )
    distributions = space.distributions()
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    plan = sensitivity_plan(space, None, 7)
    for number, point in enumerate(plan):
        study.add_trial(
            optuna.trial.create_trial(
                params=point, distributions={n: distributions[n] for n in point}, value=float(number)
            )
        )
    assert [trial.params for trial in study.trials] == plan
    assert len({tuple(sorted(point.items())) for point in plan}) == len(plan)


def test_conditional_plan_skips_parameters_inactive_at_the_base():
    parameters = {
        "optimizer": ["sgd", "adam"],
        "momentum": {"values": [0.0, 0.9], "when": {"optimizer": "sgd"}},
        "beta1": {"low": 0.8, "high": 0.99, "when": {"optimizer": "adam"}},
        "lr": [0.1, 0.01],
        "nesterov": {"value": True, "when": {"optimizer": "sgd"}},
    }
    space = parse(parameters)
    plan = sensitivity_plan(space, None, 3)
    assert plan == [
        {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1},
        {"optimizer": "adam", "beta1": 0.895, "lr": 0.1},  # beta1 appears at its base value
        {"optimizer": "sgd", "momentum": 0.9, "lr": 0.1},
        {"optimizer": "sgd", "momentum": 0.0, "lr": 0.01},
    ]
    assert space.fixed_for(plan[0]) == {"nesterov": True}
    assert space.fixed_for(plan[1]) == {}
    around_adam = sensitivity_plan(space, {"optimizer": "adam"}, 3)
    assert around_adam[0] == {"optimizer": "adam", "beta1": 0.895, "lr": 0.1}
    assert around_adam[1] == {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1}
    assert [p["beta1"] for p in around_adam[2:4]] == [0.8, 0.99]
    assert around_adam[4] == {"optimizer": "adam", "beta1": 0.895, "lr": 0.01}
    assert len(around_adam) == 5
    for point in plan + around_adam:
        assert all((name in point) == space.is_active(name, point) for name in space.axes)


def test_a_parameter_inactive_at_the_base_is_named_in_a_note():
    from mlflow_sweeper.search.algorithms.builtin import Sensitivity

    parameters = {
        "optimizer": ["sgd", "adam"],
        "momentum": {"values": [0.0, 0.9], "when": {"optimizer": "sgd"}},
        "beta1": {"low": 0.8, "high": 0.99, "when": {"optimizer": "adam"}},
    }
    space = parse(parameters)
    assert unswept_at_base(space) == ["beta1"]
    (note,) = Sensitivity(space, None, None, 3).notes()
    assert note.startswith("not swept: beta1, which does not exist at the base point")
    assert "set `base`" in note
    assert Sensitivity(parse({"a": [1, 2], "b": [3, 4]}), None, None, 3).notes() == []
    assert unswept_at_base(space, {"optimizer": "adam"}) == ["momentum"]


# ---- base and points checks ----------------------------------------------------------------------

SPACE = {
    "opt": ["sgd", "adam"],
    "lr": {"low": 0.0, "high": 1.0},
    "n": {"low": 1, "high": 9, "type": "int"},
    "f": {"low": 0.0, "high": 1.0, "step": 0.25},
    "flag": [True, False],
    "seed": 0,
}


def test_parse_sensitivity_defaults_and_canonical_values():
    space = parse(SPACE)
    assert parse_sensitivity(space, None, None) == ({}, 5)
    base, points = parse_sensitivity(space, {"n": 3.0, "lr": 1, "f": 0.75, "flag": False}, 2)
    assert base == {"n": 3, "lr": 1.0, "f": 0.75, "flag": False} and points == 2
    assert type(base["n"]) is int and type(base["lr"]) is float


@pytest.mark.parametrize(
    "base, points, key, words",
    [
        ({"nope": 1}, 5, "base.nope", "unknown parameter"),
        ({"seed": 1}, 5, "base.seed", "fixed"),
        ({"opt": "rmsprop"}, 5, "base.opt", "not one of"),
        ({"flag": 1}, 5, "base.flag", "not one of"),
        ({"lr": 1.5}, 5, "base.lr", "outside the range"),
        ({"lr": "0.5"}, 5, "base.lr", "expected a number"),
        ({"lr": True}, 5, "base.lr", "expected a number"),
        ({"n": 2.5}, 5, "base.n", "whole number"),
        ({"n": 0}, 5, "base.n", "outside the range"),
        ({"f": 0.3}, 5, "base.f", "not on the range's steps"),
        ([1, 2], 5, "base", "mapping"),
        (None, 1, "points", "at least 2"),
        (None, "5", "points", "whole number"),
        (None, 2.0, "points", "whole number"),
        (None, True, "points", "whole number"),
    ],
)
def test_parse_sensitivity_errors(base, points, key, words):
    with pytest.raises(SpaceError) as caught:
        parse_sensitivity(parse(SPACE), base, points)
    assert caught.value.key == key
    assert words in str(caught.value)


# ---- spread ------------------------------------------------------------------------------------


def objective(point: dict) -> float:
    return 10 * point["a"] + (5 if point["b"] == "y" else 0) + point.get("c", 0)


def test_spread_per_parameter_includes_the_base_trial():
    space = parse({"a": [1, 2, 3], "b": ["x", "y"], "c": {"values": [0, 1, 7], "when": {"b": "x"}}})
    plan = sensitivity_plan(space, None, 5)
    rows = [(point, objective(point)) for point in plan]
    # base a=1 b=x c=0 -> 10; a: 20, 30; b=y (c absent): 15; c: 11, 17
    assert sensitivity_spread(rows) == {"a": 20.0, "b": 5.0, "c": 7.0}


def test_spread_without_the_base_trial_or_with_failed_trials():
    space = parse({"a": [1, 2, 3], "b": ["x", "y"]})
    plan = sensitivity_plan(space, None, 5)
    values = {1: 20.0, 2: 30.0, 3: 15.0}
    rows = [(plan[i], values[i]) for i in (3, 2, 1)]  # base missing, any order
    assert sensitivity_spread(rows, base=plan[0]) == {"a": 10.0, "b": 0.0}
    rows = [(plan[0], 10.0), (plan[1], float("nan")), (plan[2], 30.0), (plan[3], None)]
    assert sensitivity_spread(rows) == {"a": 20.0}
    assert sensitivity_spread([]) == {}


def test_sensitivity_with_several_objectives_is_a_config_error(tmp_path):
    """One spread per parameter needs one objective: several metrics exit 2 at load."""
    from conftest import write_config

    from mlflow_sweeper.config import load_config
    from mlflow_sweeper.errors import ConfigError

    metrics = [{"name": "a", "direction": "minimize"}, {"name": "b", "direction": "minimize"}]
    path = write_config(tmp_path, algorithm="sensitivity", spec={"metrics": metrics})
    with pytest.raises(ConfigError, match=r": spec\.metrics: algorithm 'sensitivity' measures .*"):
        load_config(path)
    assert load_config(write_config(tmp_path, "one.yaml", algorithm="sensitivity")).algorithm == "sensitivity"
    # no objective at all: nothing to measure the spread of
    path = write_config(tmp_path, "none.yaml", algorithm="sensitivity", spec=None)
    with pytest.raises(ConfigError, match=r": spec\.metric: algorithm 'sensitivity' measures how much .*"):
        load_config(path)
