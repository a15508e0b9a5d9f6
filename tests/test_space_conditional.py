"""Conditional parameters (`when`): parsing, activity, the grid of valid points, define-by-run sampling."""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from mlflow_sweeper.config import load_config
from mlflow_sweeper.errors import ConfigError
from mlflow_sweeper.search.grid import ConditionalGrid, Grid, Permutation
from mlflow_sweeper.search.space import SearchSpace, SpaceError, suggest_point
from mlflow_sweeper.search.values import point_key

OPTIMIZERS = {
    "optimizer": ["sgd", "adam", "rmsprop"],
    "momentum": {"values": [0.0, 0.9], "when": {"optimizer": "sgd"}},
    "beta1": {"values": [0.8, 0.9, 0.99], "when": {"optimizer": ["adam", "rmsprop"]}},
    "lr": [0.1, 0.01],
}

NESTED = {
    "model": ["mlp", "cnn", "linear"],
    "layers": {"low": 1, "high": 3, "type": "int", "when": {"model": ["mlp", "cnn"]}},
    "kernel": {"values": [3, 5], "when": {"model": "cnn"}},
    "pool": {"values": ["max", "avg", "none"], "when": {"model": "cnn"}},
    "pool_size": {"values": [2, 4], "when": {"pool": ["max", "avg"]}},
    "padding": {"low": 0, "high": 2, "step": 1, "type": "int", "when": {"kernel": 5, "pool": "max"}},
    "bias": [True, False],
}

FIXED_CONTROLLER = {
    "flag": [True, False],
    "mode": {"value": "train", "when": {"flag": True}},
    "epochs": {"values": [1, 2], "when": {"mode": "train"}},
    "warmup": {"value": 5, "when": {"epochs": 2}},
    "extra": {"values": [1, 2, 3], "when": {"flag": False}},
}

DEEP_CHAIN = {
    "a": [0, 1],
    "b": {"values": [0, 1], "when": {"a": 1}},
    "c": {"values": [0, 1, 2], "when": {"b": 1}},
    "d": {"values": ["x", "y"], "when": {"c": [1, 2], "a": 1}},
    "e": [None, "z"],
}

# config order differs from dependency order: a parameter may depend on one listed after it
OUT_OF_ORDER = {
    "child": {"values": [1, 2], "when": {"parent": "on"}},
    "parent": ["on", "off"],
    "grandchild": {"values": ["p", "q"], "when": {"child": 2}},
}

ONLY_FIXED_CONTROLLERS = {
    "mode": "train",
    "a": {"values": [1, 2], "when": {"mode": "train"}},
    "b": [None, "x"],
}

SPACES = {
    "only-fixed-controllers": ONLY_FIXED_CONTROLLERS,
    "optimizers": OPTIMIZERS,
    "nested": NESTED,
    "fixed-controller": FIXED_CONTROLLER,
    "deep-chain": DEEP_CHAIN,
    "out-of-order": OUT_OF_ORDER,
}


def brute_force(space: SearchSpace) -> list[dict]:
    """Every valid point: the full product filtered by the conditions, deduplicated."""
    axes = space.grid_axes()
    seen, points = set(), []
    for combination in itertools.product(*axes.values()):
        point = space.resolve(dict(zip(axes, combination, strict=True)))
        if point_key(point) not in seen:
            seen.add(point_key(point))
            points.append(point)
    return points


def valid_by_definition(space: SearchSpace, point: dict) -> bool:
    """A point is valid when exactly the parameters whose conditions hold are present."""
    return all((name in point) == space.is_active(name, point) for name in space.axes)


# ---- the conditional grid --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPACES))
def test_conditional_grid_is_exactly_the_valid_combinations(name):
    space = SearchSpace.parse(SPACES[name])
    grid = space.grid()
    assert isinstance(grid, ConditionalGrid)
    decoded = [grid.point(i) for i in range(grid.size)]
    keys = [point_key(point) for point in decoded]
    assert len(set(keys)) == len(keys), "a point is decoded twice"
    expected = brute_force(space)
    assert grid.size == len(expected)
    assert set(keys) == {point_key(point) for point in expected}
    for point in decoded:
        assert valid_by_definition(space, point)
        assert list(point) == [n for n in space.axes if n in point]  # config order


def test_conditional_grid_sizes_by_hand():
    # sgd: 2 momenta x 2 lr = 4; adam and rmsprop: 3 beta1 x 2 lr = 6 each
    assert SearchSpace.parse(OPTIMIZERS).grid().size == 4 + 6 + 6
    # mlp: 3 layers x 2 bias = 6; linear: 2; cnn: 3 layers x 2 kernels x pools x 2 bias where
    # pools = max (2 sizes, padding 3 when kernel 5 else 1) + avg (2 sizes) + none
    cnn = 3 * 2 * (((2 * 3) + 2 + 1) + ((2 * 1) + 2 + 1))
    assert SearchSpace.parse(NESTED).grid().size == 6 + 2 + cnn


def test_conditional_grid_order_and_absent_parameters():
    grid = SearchSpace.parse(OPTIMIZERS).grid()
    assert grid.point(0) == {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1}
    assert grid.point(3) == {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01}
    assert grid.point(4) == {"optimizer": "adam", "beta1": 0.8, "lr": 0.1}
    assert grid.point(15) == {"optimizer": "rmsprop", "beta1": 0.99, "lr": 0.01}
    for index in (-1, 16, 1000):
        with pytest.raises(IndexError):
            grid.point(index)


def test_a_controller_that_does_not_exist_is_absent_from_the_branch():
    grid = SearchSpace.parse(DEEP_CHAIN).grid()
    points = [grid.point(i) for i in range(grid.size)]
    assert points[:2] == [{"a": 0, "e": None}, {"a": 0, "e": "z"}]  # no b, c, d when a == 0
    # a == 1: b == 0 -> 2 (e); b == 1 -> c == 0: 2, c in (1, 2): 2 d x 2 e each
    assert grid.size == 2 + 2 + 2 + 4 + 4
    fixed_controlled = SearchSpace.parse(FIXED_CONTROLLER).grid()
    assert [fixed_controlled.point(i) for i in range(fixed_controlled.size)] == [
        {"flag": True, "epochs": 1},
        {"flag": True, "epochs": 2},
        {"flag": False, "extra": 1},
        {"flag": False, "extra": 2},
        {"flag": False, "extra": 3},
    ]


def test_unconditional_space_keeps_todays_grid():
    parameters = {"a": [1, 2], "b": {"low": 0, "high": 4, "step": 2, "type": "int"}, "c": "fixed"}
    space = SearchSpace.parse(parameters)
    grid = space.grid()
    assert type(grid) is Grid
    expected = Grid(space.grid_axes())
    assert [grid.point(i) for i in range(grid.size)] == [expected.point(i) for i in range(expected.size)]
    assert space.conditions == {} and space.conditional_names() == []
    assert space.fixed_for({"a": 1, "b": 0}) == {"c": "fixed"}
    assert "when" not in space.describe()


def test_continuous_conditional_space_has_no_grid():
    space = SearchSpace.parse(
        {"opt": ["sgd", "adam"], "m": {"low": 0.0, "high": 1.0, "when": {"opt": "sgd"}}}
    )
    assert space.grid() is None


def test_big_conditional_grid_is_not_materialised():
    # 3 branches; the `wide` branch alone has 10**6 points, the others 10**5 and 10.
    digits = tuple(range(10))
    parameters: dict = {"kind": ["wide", "narrow", "tiny"]}
    for i in range(6):
        parameters[f"w{i}"] = {"values": list(digits), "when": {"kind": "wide"}}
    for i in range(5):
        parameters[f"n{i}"] = {"values": list(digits), "when": {"kind": "narrow"}}
    parameters["t"] = {"values": list(digits), "when": {"kind": "tiny"}}
    space = SearchSpace.parse(parameters)
    grid = space.grid()
    assert grid.size == 10**6 + 10**5 + 10
    assert len(grid.branches) == 3
    assert grid.point(123_456) == {"kind": "wide", **{f"w{i}": int(d) for i, d in enumerate("123456")}}
    assert grid.point(10**6 + 54_321) == {
        "kind": "narrow",
        **{f"n{i}": int(d) for i, d in enumerate("54321")},
    }
    assert grid.point(grid.size - 1) == {"kind": "tiny", "t": 9}


def test_grid_distributions_cover_every_value_and_match_a_points_params():
    space = SearchSpace.parse(OPTIMIZERS)
    distributions = space.grid_distributions()
    assert distributions["beta1"] == CategoricalDistribution([0.8, 0.9, 0.99])
    assert set(distributions) == set(space.axes)
    point = space.grid().point(0)
    assert set(space.grid_distributions(point)) == set(point)
    stepped = SearchSpace.parse({"n": {"low": 1, "high": 5, "step": 2, "type": "int"}})
    assert stepped.grid_distributions() == {"n": CategoricalDistribution([1, 3, 5])}


def test_conditional_grid_points_are_recordable_in_optuna():
    space = SearchSpace.parse(NESTED)
    grid = space.grid()
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    for index in range(grid.size):
        point = grid.point(index)
        study.add_trial(
            optuna.trial.create_trial(
                params=point, distributions=space.grid_distributions(point), value=index
            )
        )
    assert [trial.params for trial in study.trials] == [grid.point(i) for i in range(grid.size)]


def test_random_order_over_a_conditional_grid_visits_each_valid_point_once():
    space = SearchSpace.parse(OPTIMIZERS)
    grid = space.grid()
    permutation = Permutation(grid.size, 7)
    shuffled = [grid.point(permutation[slot]) for slot in range(grid.size)]
    assert shuffled != [grid.point(i) for i in range(grid.size)]
    assert sorted(map(point_key, shuffled), key=repr) == sorted(map(point_key, brute_force(space)), key=repr)


# ---- activity, fixed values, evaluation order -------------------------------------------------------


def test_is_active_and_fixed_for():
    space = SearchSpace.parse(FIXED_CONTROLLER)
    assert space.is_active("epochs", {"flag": True})  # through the conditional fixed value `mode`
    assert not space.is_active("epochs", {"flag": False})
    assert not space.is_active("epochs", {})
    assert space.fixed_for({"flag": True, "epochs": 2}) == {"mode": "train", "warmup": 5}
    assert space.fixed_for({"flag": True, "epochs": 1}) == {"mode": "train"}
    assert space.fixed_for({"flag": False, "extra": 1}) == {}
    assert space.fixed == {"mode": "train", "warmup": 5}  # every fixed value, for checks
    assert space.conditional_names() == ["mode", "epochs", "warmup", "extra"]
    assert SearchSpace.parse({"a": "x", "b": {"values": [1, 2], "when": {"a": "x"}}}).is_active("b", {})


def test_condition_on_a_conditional_parameter_needs_it_to_exist():
    space = SearchSpace.parse(DEEP_CHAIN)
    assert space.is_active("c", {"a": 1, "b": 1})
    assert not space.is_active("c", {"a": 0, "b": 1})  # b does not exist when a == 0
    assert space.is_active("d", {"a": 1, "b": 1, "c": 2})
    assert not space.is_active("d", {"a": 1, "b": 0, "c": 2})
    assert space.active({"a": 1, "b": 1, "c": 0}) == ["a", "b", "c", "e"]
    assert space.resolve({"a": 0, "b": 1, "c": 1, "d": "x", "e": None}) == {"a": 0, "e": None}


def test_evaluation_order_is_topological_and_stable():
    assert SearchSpace.parse(OUT_OF_ORDER).order == ("parent", "child", "grandchild")
    assert SearchSpace.parse(OPTIMIZERS).order == ("optimizer", "momentum", "beta1", "lr")
    assert SearchSpace.parse(FIXED_CONTROLLER).order == tuple(FIXED_CONTROLLER)


def test_bool_and_number_conditions_do_not_mix():
    space = SearchSpace.parse({"a": [1, True], "b": {"values": [0, 1], "when": {"a": True}}})
    assert space.conditions["b"] == {"a": (True,)}
    assert not space.is_active("b", {"a": 1})
    assert space.is_active("b", {"a": True})


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters, key, words",
    [
        ({"a": [1, 2], "b": {"values": [1], "when": {"c": 1}}}, "b.when.c", "unknown parameter"),
        ({"a": [1, 2], "b": {"values": [1], "when": {"a": 3}}}, "b.when.a", "never takes the value 3"),
        ({"a": [1, 2], "b": {"values": [1], "when": {"a": [1, 3]}}}, "b.when.a", "never takes the value 3"),
        ({"a": [1, 2], "b": {"values": [1], "when": {"a": []}}}, "b.when.a", "empty"),
        ({"a": [1, 2], "b": {"values": [1], "when": {"a": True}}}, "b.when.a", "never takes the value True"),
        ({"a": "x", "b": {"values": [1], "when": {"a": "y"}}}, "b.when.a", "never takes the value 'y'"),
        (
            {"a": {"low": 0.0, "high": 1.0}, "b": {"values": [1], "when": {"a": 0.5}}},
            "b.when.a",
            "is a range",
        ),
        (
            {"a": {"low": 1, "high": 3, "type": "int"}, "b": {"value": 1, "when": {"a": 1}}},
            "b.when.a",
            "range",
        ),
        ({"a": {"values": [1, 2], "when": {"a": 1}}}, "a.when.a", "itself"),
        (
            {"a": {"values": [1, 2], "when": {"b": 1}}, "b": {"values": [1, 2], "when": {"a": 1}}},
            "a.when.b",
            "cycle: a -> b -> a",
        ),
        (
            {
                "x": [0, 1],
                "a": {"values": [1, 2], "when": {"c": 1}},
                "b": {"values": [1, 2], "when": {"a": 1, "x": 0}},
                "c": {"values": [1, 2], "when": {"b": 2}},
            },
            "a.when.c",
            "cycle: a -> c -> b -> a",
        ),
        ({"a": [1, 2], "b": {"values": [1], "when": "a"}}, "b.when", "mapping"),
        ({"a": [1, 2], "b": {"values": [1], "when": {}}}, "b.when", "mapping"),
        ({"a": [1, 2], "b": {"value": [1, 2], "when": {"a": 1}}}, "b.value", "scalar"),
        ({"a": [1, 2], "b": {"value": 1, "low": 0, "when": {"a": 1}}}, "b.low", "cannot be combined"),
    ],
)
def test_bad_conditions_name_the_key(parameters, key, words):
    with pytest.raises(SpaceError) as caught:
        SearchSpace.parse(parameters)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_a_conditional_fixed_value_and_a_plain_value_mapping():
    space = SearchSpace.parse({"a": [1, 2], "b": {"value": "x"}, "c": {"value": None, "when": {"a": 2}}})
    assert space.fixed == {"b": "x", "c": None}
    assert space.fixed_for({"a": 1}) == {"b": "x"}
    assert space.fixed_for({"a": 2}) == {"b": "x", "c": None}


# ---- drift detection -----------------------------------------------------------------------------


def test_describe_changes_when_a_condition_changes():
    base = SearchSpace.parse(OPTIMIZERS).describe()
    changed = dict(OPTIMIZERS, momentum={"values": [0.0, 0.9], "when": {"optimizer": ["sgd", "adam"]}})
    dropped = dict(OPTIMIZERS, momentum={"values": [0.0, 0.9]})
    assert SearchSpace.parse(changed).describe() != base
    assert SearchSpace.parse(dropped).describe() != base
    assert base["when"]["momentum"] == {"optimizer": ["sgd"]}
    assert SearchSpace.parse(dict(OPTIMIZERS)).describe() == base


# ---- define-by-run sampling -------------------------------------------------------------------------

SAMPLED = {
    "optimizer": ["sgd", "adam"],
    "momentum": {"low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
    "nesterov": {"values": [True, False], "when": {"optimizer": "sgd"}},
    "dampening": {"low": 0.0, "high": 0.5, "when": {"nesterov": False}},
    "beta1": {"low": 0.8, "high": 0.999, "when": {"optimizer": ["adam"]}},
    "layers": {"low": 1, "high": 8, "type": "int", "log": True},
    "wd": {"low": 1e-6, "high": 1e-2, "log": True},
}


@pytest.mark.parametrize(
    "sampler",
    [optuna.samplers.RandomSampler(seed=1), optuna.samplers.TPESampler(seed=1, n_startup_trials=10)],
    ids=["random", "tpe"],
)
def test_define_by_run_sampling_suggests_exactly_the_active_parameters(sampler):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.parse(SAMPLED)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=sampler)
    seen_branches = set()
    for number in range(100):
        trial = study.ask()
        params = suggest_point(trial, space)
        assert params == trial.params  # nothing suggested beyond what is returned
        assert list(params) == [n for n in space.axes if n in params]
        for name in space.axes:
            assert (name in params) == space.is_active(name, params), (number, name, params)
        for name, value in params.items():
            assert space.distributions()[name]._contains(space.distributions()[name].to_internal_repr(value))
        seen_branches.add((params["optimizer"], params.get("nesterov")))
        study.tell(trial, params.get("momentum", 0.0) + params.get("beta1", 0.0) + params["wd"])
    assert seen_branches == {("sgd", True), ("sgd", False), ("adam", None)}
    assert len(study.trials) == 100


# ---- through the config loader ---------------------------------------------------------------------

CONFIG = """\
experiment: exp
sweep_name: cond
command: python train.py
parameters:
  optimizer: [sgd, adam]
  momentum: {{values: [0.0, 0.9], when: {{optimizer: {momentum_when}}}}}
  beta1: {{values: [0.9, 0.99], when: {{optimizer: [adam]}}}}
  warmup: {{value: 3, when: {{optimizer: sgd}}}}
"""


def test_config_with_conditions_loads_and_fingerprints_them(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(CONFIG.format(momentum_when="sgd"))
    config = load_config(path)
    grid = config.space.grid()
    assert [grid.point(i) for i in range(grid.size)] == [
        {"optimizer": "sgd", "momentum": 0.0},
        {"optimizer": "sgd", "momentum": 0.9},
        {"optimizer": "adam", "beta1": 0.9},
        {"optimizer": "adam", "beta1": 0.99},
    ]
    assert config.space.fixed_for(grid.point(0)) == {"warmup": 3}
    assert config.space.fixed_for(grid.point(2)) == {}
    path.write_text(CONFIG.format(momentum_when="[sgd, adam]"))
    assert load_config(path).fingerprint() != config.fingerprint()


def test_config_with_a_bad_condition_names_the_key(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(CONFIG.format(momentum_when="rmsprop"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "parameters.momentum.when.optimizer"
    assert "never takes the value 'rmsprop'" in str(caught.value)


def test_a_parameter_whose_condition_always_holds_is_not_optional():
    """Only a parameter absent from some valid trial needs an entry point default."""
    space = SearchSpace.parse(
        {
            "opt": ["sgd", "adam"],
            "always": {"low": 0.0, "high": 1.0, "when": {"opt": ["sgd", "adam"]}},
            "on_fixed": {"values": [1, 2], "when": {"mode": "train"}},
            "mode": "train",
            "sgd_only": {"low": 0.0, "high": 1.0, "when": {"opt": "sgd"}},
            "deep": {"values": [1], "when": {"sgd_only_flag": True}},
            "sgd_only_flag": {"values": [True], "when": {"opt": "sgd"}},
        }
    )
    assert space.conditional_names() == ["sgd_only", "deep", "sgd_only_flag"]
    assert SearchSpace.parse(DEEP_CHAIN).conditional_names() == ["b", "c", "d"]
