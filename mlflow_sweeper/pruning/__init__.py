"""Early stopping: stop bad trials from the metric history their runs log.

`registry` turns the config's `early_stopping` section into an Optuna pruner; `watch` turns a
running trial's MLflow metric history into Optuna intermediate values and asks that pruner.
Both only need a run id and the shared Optuna storage, so they work for every backend and see
the trials of every agent.
"""

from __future__ import annotations

from .registry import (
    DEFAULT_INTERVAL,
    PRUNERS,
    EarlyStopping,
    PrunerKind,
    parse_early_stopping,
)
from .watch import PRUNED_TAG, TrialWatch, pruned_values, tell_pruned

__all__ = [
    "DEFAULT_INTERVAL",
    "PRUNED_TAG",
    "PRUNERS",
    "EarlyStopping",
    "PrunerKind",
    "TrialWatch",
    "parse_early_stopping",
    "pruned_values",
    "tell_pruned",
]
