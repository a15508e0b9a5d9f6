"""Which earlier results fit a sweep's space, and which grid slot each one holds: pure, in process."""

from __future__ import annotations

import pytest
import yaml
from conftest import write_config
from mlflow.tracking import MlflowClient

from mlflow_sweeper.config import load_config
from mlflow_sweeper.errors import ConfigError
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.search.grid import Permutation
from mlflow_sweeper.search.space import SearchSpace
from mlflow_sweeper.warmstart.entering import gather, grid_slot
from mlflow_sweeper.warmstart.fit import fitting_point

SPACE = SearchSpace.parse(
    {
        "lr": {"low": 1e-4, "high": 1e-1, "log": True},
        "layers": {"low": 1, "high": 4, "type": "int"},
        "opt": ["adam", "sgd"],
        "momentum": {"low": 0.0, "high": 0.99, "when": {"opt": "sgd"}},
        "epochs": 5,
    }
)


def test_a_result_as_logged_fits_with_the_space_types():
    logged = {"lr": "0.001", "layers": "3", "opt": "adam", "epochs": "5", "other": "x"}
    point = fitting_point(SPACE, logged, False)
    assert point == {"lr": 0.001, "layers": 3, "opt": "adam"}
    with_momentum = {"lr": "0.01", "layers": "2", "opt": "sgd", "momentum": "0.9", "epochs": "5"}
    assert fitting_point(SPACE, with_momentum, False)["momentum"] == 0.9


@pytest.mark.parametrize(
    "params",
    [
        {"lr": "0.5", "layers": "3", "opt": "adam", "epochs": "5"},  # outside the range
        {"lr": "0.001", "layers": "2.5", "opt": "adam", "epochs": "5"},  # not an int
        {"lr": "0.001", "layers": "3", "opt": "rmsprop", "epochs": "5"},  # not in the list
        {"lr": "0.001", "layers": "3", "opt": "adam", "epochs": "6"},  # a fixed value differs
        {"lr": "0.001", "opt": "adam", "epochs": "5"},  # a swept parameter missing
        {"lr": "0.001", "layers": "3", "opt": "sgd", "epochs": "5"},  # its condition holds: momentum needed
    ],
)
def test_results_that_do_not_fit(params):
    assert fitting_point(SPACE, params, False) is None


def test_a_value_logged_for_a_parameter_whose_condition_is_off():
    """Left aside where MLflow Projects may have logged it as the entry point's default; else it
    was passed, and the run is not of the point that leaves it out."""
    adam = {"lr": "0.001", "layers": "3", "opt": "adam", "momentum": "0.9", "epochs": "5"}
    assert fitting_point(SPACE, adam, False) == {"lr": 0.001, "layers": 3, "opt": "adam"}
    assert fitting_point(SPACE, adam, False, inactive_logged=False) is None
    sgd = {**adam, "opt": "sgd"}
    assert fitting_point(SPACE, sgd, False, inactive_logged=False)["momentum"] == 0.9


def test_only_a_project_run_may_carry_a_value_its_point_leaves_out(tmp_path):
    """Real MLflow runs: one of an MLflow Project (its entry point tagged), one not, each logged
    `momentum` with `opt=adam`; the sweep passes `momentum` with `sgd` only."""
    parameters = {"opt": ["adam", "sgd"], "momentum": {"values": [0.5], "when": {"opt": "sgd"}}}
    config = load_config(
        write_config(tmp_path, parameters=parameters, warm_start=[{"runs": "tags.kind = 'old'"}])
    )
    client = MlflowClient(config.mlflow_storage)
    experiment_id = client.create_experiment("exp")
    runs = {}
    for name, tags in (("project", {"mlflow.project.entryPoint": "main"}), ("command", {})):
        run = client.create_run(experiment_id, tags={"kind": "old", **tags})
        client.log_param(run.info.run_id, "opt", "adam")
        client.log_param(run.info.run_id, "momentum", "0.5")
        client.log_metric(run.info.run_id, "score", 1.0)
        client.set_terminated(run.info.run_id)
        runs[name] = run.info.run_id
    gathered = gather(config, config.mlflow_storage, PointSource(config))
    assert [t.run_id for t in gathered.trials] == [runs["project"]] and gathered.misfits == 1


def test_float_noise_on_a_bound_or_a_fixed_value_still_fits():
    """A stepped range's 0.1 * 3 is 0.30000000000000004 in floats; runs logged it so."""
    stepped, ranged = {"low": 0.1, "high": 0.3, "step": 0.1}, {"low": 0.0, "high": 0.3}
    space = SearchSpace.parse({"w": stepped, "d": ranged, "f": 0.3})
    noisy = {"w": "0.30000000000000004", "d": "0.30000000000000004", "f": "0.30000000000000004"}
    assert fitting_point(space, noisy, False) == {"w": 0.3, "d": 0.3}
    assert fitting_point(space, {**noisy, "d": "0.3001"}, False) is None  # past the bound, not noise
    assert fitting_point(space, {**noisy, "f": "0.3001"}, False) is None


def test_a_float_reaches_trials_and_runs_without_float_noise():
    from mlflow_sweeper.command_line import value_text

    assert value_text(0.1 * 3) == "0.3" and value_text(3.0) == "3.0" and value_text(1e-05) == "1e-05"
    assert value_text(0.00039688158043329206) == "0.00039688158043329206"  # every digit of the rest
    assert value_text(0.123456789012345) == "0.123456789012345" and value_text(True) == "True"


def test_a_stepped_range_takes_only_values_on_its_lattice():
    """A value a stepped range cannot take is no result of this space, grid or not."""
    space = SearchSpace.parse({"x": {"low": 0.0, "high": 1.0, "step": 0.1}})
    assert fitting_point(space, {"x": "0.30000000000000004"}, False) == {"x": 0.3}
    assert fitting_point(space, {"x": "0.4517"}, False) is None


def config(tmp_path, **keys):
    data = {
        "experiment": "e",
        "sweep_name": "s",
        "command": "true",
        "parameters": {"x": [1, 2, 3, 4], "y": [10, 20]},
        **keys,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_a_grid_point_maps_to_the_slot_that_runs_it(tmp_path):
    source = PointSource(config(tmp_path))
    for slot in range(8):
        assert grid_slot(source, source.fixed_point(slot)) == slot
    assert grid_slot(source, {"x": 5, "y": 10}) is None


def test_a_conditional_grid_point_maps_to_its_slot(tmp_path):
    params = {"opt": ["adam", "sgd"], "m": {"values": [0.5, 0.9], "when": {"opt": "sgd"}}, "x": [1, 2]}
    source = PointSource(config(tmp_path, parameters=params))
    for slot in range(source.budget):
        assert grid_slot(source, source.fixed_point(slot)) == slot


def test_random_over_a_finite_space_and_sensitivity_map_a_point_to_its_slot(tmp_path):
    """So an earlier result of theirs is not run again either."""
    source = PointSource(config(tmp_path, algorithm="random", seed=1, max_trials=8))
    assert [grid_slot(source, source.fixed_point(slot)) for slot in range(8)] == list(range(8))
    source = PointSource(
        config(tmp_path, algorithm="sensitivity", spec={"metric": "m", "direction": "maximize"})
    )
    assert [grid_slot(source, source.fixed_point(slot)) for slot in range(source.budget)] == list(
        range(source.budget)
    )


@pytest.mark.parametrize("size", [1, 2, 5, 8, 100, 1000])
def test_the_permutation_knows_where_each_value_is(size):
    permutation = Permutation(size, seed=7)
    assert [permutation.index_of(permutation[i]) for i in range(size)] == list(range(size))


@pytest.mark.parametrize(
    ("max_trials", "held", "budget"),
    [
        (2, set(), 2),
        (2, {0, 1}, 4),
        (2, {0, 2}, 4),
        (2, {5}, 2),
        (2, {0, 1, 2, 3, 4, 5, 6, 7}, 8),
        (None, {0}, 8),
    ],
)
def test_slots_earlier_results_hold_use_no_budget(tmp_path, max_trials, held, budget):
    """A grid of 8 with `max_trials` new trials: the budget reaches past the held slots."""
    source = PointSource(config(tmp_path, max_trials=max_trials))
    source.hold(frozenset(held))
    assert source.budget == budget


@pytest.mark.parametrize(
    ("warm_start", "key"),
    [
        ("e/s", "warm_start"),
        ([{"sweep": "no-slash"}], "warm_start[0].sweep"),
        ({"sweep": "no-slash"}, "warm_start[0].sweep"),
        ([{"sweep": "e/s", "runs": "x"}], "warm_start[0]"),
        ([{"sweep": "e/s", "experiment": "x"}], "warm_start[0].experiment"),
        ([{"runs": 3}], "warm_start[0].runs"),
        ([{"run": "x"}], "warm_start[0].run"),
    ],
)
def test_a_malformed_warm_start_is_a_config_error(tmp_path, warm_start, key):
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, warm_start=warm_start)
    assert caught.value.exit_code == 2 and f"{key}:" in str(caught.value)


def test_one_warm_start_source_may_be_written_without_the_list(tmp_path):
    alone = config(tmp_path, warm_start={"sweep": "e/s"}).warm_start
    assert alone == config(tmp_path, warm_start=[{"sweep": "e/s"}]).warm_start and len(alone) == 1


def test_an_earlier_result_with_a_nan_or_infinite_objective_does_not_fit(tmp_path):
    """It was infeasible: entered, an infinity (kept by MLflow's SQL stores as the largest float)
    would be the best of a maximized sweep."""
    import sys

    from mlflow_sweeper.warmstart.collect import EarlierResult, prepare

    swept = config(tmp_path, spec={"metric": "score", "direction": "maximize"}, algorithm="tpe", max_trials=4)
    scores = [float("nan"), float("inf"), -float("inf"), sys.float_info.max, 0.5]
    earlier = [
        EarlierResult(f"run-{i}", "runs", {"x": "1", "y": "10"}, {"score": s}) for i, s in enumerate(scores)
    ]
    warm = prepare(swept, earlier, on_grid=False)
    assert [t.values for t in warm.trials] == [[0.5]] and warm.misfits == 4


@pytest.mark.parametrize("here", ["no-store", "another-store"])
def test_a_source_sweep_recorded_in_another_mlflow_store_is_named_where(tmp_path, here):
    """The source sweep's runs are not in this sweep's MLflow store: the refusal says where its
    agents recorded them, not only that this store lacks them."""
    from mlflow_sweeper.coordination import SweepStudy
    from mlflow_sweeper.storages import open_optuna_storage
    from mlflow_sweeper.tracking_store import TRACKING_URI_ATTR

    source = load_config(write_config(tmp_path, sweep_name="a", optuna_storage=f"sqlite:///{tmp_path}/o.db"))
    study = SweepStudy(open_optuna_storage(source.optuna_storage), source, PointSource(source), "agent")
    study.create_or_find()
    recorded = f"sqlite:///{tmp_path}/a.db"
    study.store.set_study_user_attr(study.study_id, TRACKING_URI_ATTR, recorded)
    uri = f"sqlite:///{tmp_path}/b.db"
    if here == "another-store":
        MlflowClient(uri).create_experiment("other")
    config = load_config(
        write_config(
            tmp_path, "b.yaml", sweep_name="b", optuna_storage=source.optuna_storage, mlflow_storage=uri,
            warm_start=[{"sweep": "exp/a"}],
        )  # fmt: skip
    )
    with pytest.raises(ConfigError, match="warm_start") as caught:
        gather(config, uri, PointSource(config))
    assert f"its agents recorded its runs in {recorded}" in str(caught.value)
