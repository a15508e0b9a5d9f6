"""An in-memory Optuna study holding a sweep's trials: what Optuna's plots and importance
evaluators take, built without touching (or locking) the sweep's real storage."""

from __future__ import annotations

import logging
import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from .objectives import Objectives

log = logging.getLogger(__name__)


def plottable(trial: FrozenTrial, objectives: Objectives) -> bool:
    """A COMPLETE trial counts only with one finite value per objective; other states as they are."""
    if trial.state != TrialState.COMPLETE:
        return True
    values = trial.values
    return (
        values is not None
        and len(values) == len(objectives.names)
        and all(v is not None and math.isfinite(v) for v in values)
    )


def in_memory_study(trials: list[FrozenTrial], objectives: Objectives) -> optuna.Study | None:
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
