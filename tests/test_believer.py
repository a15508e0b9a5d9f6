"""TPE's points drawn while other trials run: each running trial is believed to score what a
Gaussian process fitted to the finished trials predicts for it (instead of Optuna's constant
liar), on real Optuna studies and through the sweeper's own claims."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from conftest import write_config
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from mlflow_sweeper import compat
from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.search.algorithms.believer import BelievingTPESampler, believed_results, kriging_means

optuna.logging.set_verbosity(optuna.logging.ERROR)
SQUARE = {"x": FloatDistribution(0, 10), "y": FloatDistribution(0, 10)}


def finished(study: optuna.Study, params: dict, value, distributions=SQUARE, **system_attrs) -> None:
    values = value if isinstance(value, list) else [value]
    trial = optuna.trial.create_trial(
        params=params, distributions=distributions, values=values, system_attrs=system_attrs
    )
    study.add_trial(trial)


def running(study: optuna.Study, params: dict, distributions=SQUARE) -> optuna.trial.FrozenTrial:
    """A trial started at `params` and not told: RUNNING with its point, as a busy worker's."""
    study.enqueue_trial(params)
    trial = study.ask(distributions)
    return study._storage.get_trial(trial._trial_id)


def bowl(x: float, y: float) -> float:
    return (x - 3) ** 2 + (y - 7) ** 2


def test_running_trials_are_believed_to_score_what_the_finished_ones_predict():
    """On a smooth objective, 25 finished trials predict a running trial's value far better than
    its nearest finished neighbour's value does; the running trials stay running in the storage."""
    study = optuna.create_study()
    rng = np.random.RandomState(0)
    for x, y in rng.uniform(0, 10, (25, 2)):
        finished(study, {"x": x, "y": y}, bowl(x, y))
    points = [(3.0, 7.0), (9.0, 1.0), (5.0, 5.0), (0.5, 9.5)]
    started = [running(study, {"x": x, "y": y}) for x, y in points]
    drawing = running(study, {"x": 1.0, "y": 1.5})  # the trial being sampled is never believed

    believed = believed_results(study.get_trials(deepcopy=False), drawing.number)

    assert [t.number for t in believed] == [t.number for t in started]
    assert {t.state for t in believed} == {TrialState.COMPLETE}
    assert [t.params for t in believed] == [t.params for t in started]
    errors = [abs(t.values[0] - bowl(*point)) for t, point in zip(believed, points, strict=True)]
    assert max(errors) < 3.0, errors  # the bowl spans 0 to 65 here
    finished_trials = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    nearest_errors = []
    for x, y in points:
        nearest = min(finished_trials, key=lambda t: (t.params["x"] - x) ** 2 + (t.params["y"] - y) ** 2)
        nearest_errors.append(abs(nearest.value - bowl(x, y)))
    assert sum(errors) < sum(nearest_errors) / 2
    stored = {t.number: t.state for t in study.get_trials()}
    assert {stored[t.number] for t in started} == {TrialState.RUNNING}  # nothing stored


def test_values_that_are_not_all_finite_leave_the_nearest_neighbour_to_stand_in():
    between = np.zeros((2, 2, 1))
    between[0, 1, 0] = between[1, 0, 0] = 1.0
    gaps = np.array([[[0.1], [0.9]]])  # one running trial's gaps to the two finished ones
    assert kriging_means(between, gaps, np.array([[1.0], [np.inf]])) is None
    study = optuna.create_study()
    finished(study, {"x": 1.0, "y": 1.0}, 5.0)
    finished(study, {"x": 9.0, "y": 9.0}, float("inf"))
    running(study, {"x": 8.0, "y": 8.5})
    assert [t.values for t in believed_results(study.get_trials(), -1)] == [[float("inf")]]


def test_nothing_is_believed_before_a_trial_has_finished_or_while_none_runs():
    study = optuna.create_study()
    running(study, {"x": 2.0, "y": 3.0})
    assert believed_results(study.get_trials(), -1) == []
    study.tell(0, 1.0)
    assert believed_results(study.get_trials(), -1) == []


def test_log_ranges_are_read_in_logs_and_choices_as_equal_or_not():
    log_rate = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    study = optuna.create_study()
    finished(study, {"lr": 1e-4}, 3.0, log_rate)
    finished(study, {"lr": 1e-1}, 7.0, log_rate)
    # 2e-2 is a fifth of the range from 1e-4, but three quarters of the way in logs
    running(study, {"lr": 2e-2}, log_rate)
    (believed,) = believed_results(study.get_trials(), -1)
    assert believed.values[0] > 5.0

    mixed = {"x": FloatDistribution(0, 10), "opt": CategoricalDistribution(["adam", "sgd", "rms"])}
    study = optuna.create_study()
    finished(study, {"x": 5.0, "opt": "adam"}, 1.0, mixed, name="adam")
    finished(study, {"x": 1.0, "opt": "rms"}, 2.0, mixed, name="rms")
    # closer in x to adam's, but another choice is as far as a whole range: rms's is nearer
    running(study, {"x": 4.0, "opt": "rms"}, mixed)
    (believed,) = believed_results(study.get_trials(), -1)
    assert believed.values[0] > 1.5 and believed.system_attrs["name"] == "rms"


def test_a_believed_trial_has_every_objective_and_the_constraint_values_of_its_neighbour():
    study = optuna.create_study(directions=["minimize", "maximize"])
    finished(study, {"x": 1.0, "y": 1.0}, [0.5, 3.0], constraints=[0.2, -1.0])
    running(study, {"x": 1.5, "y": 1.0})
    (believed,) = believed_results(study.get_trials(), -1)
    assert believed.values == [0.5, 3.0]
    assert believed.system_attrs["constraints"] == [0.2, -1.0]  # what constraint-aware TPE reads

    finished(study, {"x": 9.0, "y": 9.0}, [4.5, -1.0], constraints=[-0.5, -2.0])
    (believed,) = believed_results(study.get_trials(), -1)
    assert believed.values[0] < 2.5 and believed.values[1] > 1.0  # each objective its own fit
    assert believed.system_attrs["constraints"] == [0.2, -1.0]


def test_with_no_trial_running_the_believer_draws_exactly_optunas_tpe():
    def points(sampler):
        study = optuna.create_study(sampler=sampler)
        study.optimize(
            lambda t: (t.suggest_float("x", 0, 10) - 3) ** 2 + t.suggest_float("y", 0, 10), n_trials=25
        )
        return [t.params for t in study.trials]

    assert points(BelievingTPESampler(seed=3)) == points(
        optuna.samplers.TPESampler(seed=3, constant_liar=False)
    )


def test_believed_trials_count_toward_the_random_start_up():
    """One trial finished, nine running: Optuna's TPE is still random (one result of the ten it
    waits for), the believer's history holds ten and draws from the model."""
    study = optuna.create_study()
    finished(study, {"x": 9.0, "y": 9.0}, 0.0)
    for k in range(9):
        running(study, {"x": 9.0 - k / 10, "y": 9.0})
    drawing = study.ask()
    view = compat.study_with_extra_finished(study, believed_results(study.get_trials(), drawing.number))
    assert len(view._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))) == 10
    assert len(view._get_trials(deepcopy=False, states=(TrialState.RUNNING,))) == 10  # the stored ones

    def first_draw(sampler):
        trial = study._storage.get_trial(drawing._trial_id)
        return sampler.sample_independent(study, trial, "x", SQUARE["x"])

    # Same seeds: a sampler still in its random start-up draws what Optuna's does
    random_start = [first_draw(optuna.samplers.TPESampler(seed=s, constant_liar=False)) for s in range(5)]
    assert [first_draw(BelievingTPESampler(seed=s, n_startup_trials=11)) for s in range(5)] == random_start
    modelled = [first_draw(BelievingTPESampler(seed=s)) for s in range(5)]
    assert all(m != r for m, r in zip(modelled, random_start, strict=True)), "the believer was still random"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, BelievingTPESampler),
        ({"constant_liar": True}, optuna.samplers.TPESampler),
        ({"constant_liar": False}, optuna.samplers.TPESampler),
    ],
)
def test_tpe_believes_unless_the_config_sets_optunas_constant_liar(options, expected, tmp_path):
    config = load_config(
        write_config(
            tmp_path,
            algorithm="tpe",
            max_trials=4,
            parameters={"x": {"low": 0.0, "high": 1.0}},
            sampler_options=options or None,
        )
    )
    sampler = PointSource(config).sampler(0)
    assert type(sampler) is expected
    assert sampler._constant_liar is options.get("constant_liar", False)


def test_a_sweeps_claims_draw_with_the_running_trials_believed(tmp_path):
    """Through the sweeper's claims, as an agent with 12 trials in flight draws its next point."""
    config = load_config(
        write_config(
            tmp_path, algorithm="tpe", seed=0, max_trials=20, parameters={"x": {"low": 0.0, "high": 1.0}}
        )
    )
    source = PointSource(config)
    study = SweepStudy(InMemoryStorage(), config, source, "agent-1")
    study.create_or_find()
    in_flight = [study.claim() for _ in range(12)]
    study.complete(in_flight.pop(0), 0.5)
    study.claim()
    sampler = source._last_sampler
    assert isinstance(sampler, BelievingTPESampler)
    assert sorted(t.number for t in sampler._believed[1]) == [w.number for w in in_flight]
    assert {tuple(t.values) for t in sampler._believed[1]} == {(0.5,)}
