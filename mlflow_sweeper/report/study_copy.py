"""An in-memory Optuna study holding a sweep's trials: what Optuna's plots and importance
evaluators take, built without touching (or locking) the sweep's real storage."""

from __future__ import annotations

import logging
import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import Objective

log = logging.getLogger(__name__)


def plottable(trial: FrozenTrial, objectives: Objective) -> bool:
    """A COMPLETE trial counts only with one finite value per objective; other states as they are."""
    if trial.state != TrialState.COMPLETE:
        return True
    values = trial.values
    return (
        values is not None
        and len(values) == len(objectives.names)
        and all(v is not None and math.isfinite(v) for v in values)
    )


def in_memory_study(trials: list[FrozenTrial], objectives: Objective) -> optuna.Study | None:
    """None when the sweep has no objective: Optuna's plots need values."""
    if not objectives.optimized:
        return None
    study = optuna.create_study(
        directions=list(objectives.directions), storage=optuna.storages.InMemoryStorage()
    )
    for trial in sorted(trials, key=lambda t: t.number):
        if not plottable(trial, objectives):
            continue
        try:
            study.add_trial(trial)
        except (ValueError, RuntimeError) as exc:  # an odd trial is left out, not the report
            log.debug("report: trial %s left out of the plots: %s", trial.number, exc)
    return study


def complete_count(study: optuna.Study | None) -> int:
    if study is None:
        return 0
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


ABSENT = "(absent)"  # the choice a categorical parameter takes in a trial where it does not exist


def with_every_parameter(study: optuna.Study) -> optuna.Study:
    """The study itself when every complete trial has every parameter; else a copy in which a
    parameter absent from a trial (its `when` did not hold) takes a value of its own there: an
    extra choice, or a value just below its range.

    Optuna's importance evaluators read only the parameters every trial has, so a conditional
    parameter would get no importance at all. In the copy it gets one, which weighs its presence
    too. The forest the evaluator fits splits on order alone, so a value below the range, on a
    linear scale, stands apart from every real one.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    for trial in complete:
        for name, distribution in trial.distributions.items():
            distributions.setdefault(name, distribution)
    sometimes = {n for n in distributions if any(n not in t.params for t in complete)}
    if not sometimes:
        return study
    widened = {name: _widened(distributions[name]) for name in sometimes}
    copy = optuna.create_study(directions=study.directions, storage=optuna.storages.InMemoryStorage())
    for trial in complete:
        params, dists = dict(trial.params), dict(trial.distributions)
        for name, (distribution, absent) in widened.items():
            dists[name] = distribution
            params.setdefault(name, absent)
        copy.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=trial.values))
    return copy


def _widened(distribution) -> tuple[optuna.distributions.BaseDistribution, object]:
    """The distribution with room for an absent value, and that value."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return CategoricalDistribution([*distribution.choices, ABSENT]), ABSENT
    if isinstance(distribution, IntDistribution):
        absent = distribution.low - distribution.step
        return IntDistribution(absent, distribution.high, step=distribution.step), absent
    if isinstance(distribution, FloatDistribution):
        gap = distribution.step or (distribution.high - distribution.low) or 1.0
        absent = distribution.low - gap
        return FloatDistribution(absent, distribution.high, step=distribution.step), absent
    raise TypeError(f"unknown distribution {distribution!r}")
