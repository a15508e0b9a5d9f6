"""Parameter importances from Optuna's evaluator, computed once per objective and shared by the
metrics and every importance chart (the plots call the evaluator themselves)."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.importance import BaseImportanceEvaluator
from optuna.trial import FrozenTrial

from ..search.importance import finite

MIN_COMPLETE = 2


class CachedEvaluator(BaseImportanceEvaluator):
    """One objective's importances: evaluated on first use, then served from memory."""

    def __init__(self, inner: BaseImportanceEvaluator):
        self.inner = inner
        self._cache: dict[tuple | None, dict[str, float]] = {}

    def evaluate(
        self,
        study: optuna.Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        key = None if params is None else tuple(params)
        if key not in self._cache:
            self._cache[key] = self.inner.evaluate(study, params=params, target=target)
        return dict(self._cache[key])


def target_of(index: int, multi: bool) -> Callable[[FrozenTrial], float] | None:
    """Objective `index` of a trial; None (Optuna's default) for a single objective."""
    if not multi:
        return None
    return lambda trial: trial.values[index]


def importances(study: optuna.Study, evaluator: BaseImportanceEvaluator, index: int, multi: bool) -> dict:
    found = optuna.importance.get_param_importances(
        study, evaluator=evaluator, target=target_of(index, multi), normalize=True
    )
    return finite(found)


def importance_metrics(per_objective: dict[str, dict[str, float]]) -> dict[str, float]:
    """MLflow metric names: `importance/<param>` for the (first) objective; with several
    objectives also `importance/<metric>/<param>` for each."""
    metrics: dict[str, float] = {}
    names = list(per_objective)
    if not names:
        return metrics
    for param, value in per_objective[names[0]].items():
        metrics[f"importance/{param}"] = float(value)
    if len(names) > 1:
        for name in names:
            for param, value in per_objective[name].items():
                metrics[f"importance/{name}/{param}"] = float(value)
    return metrics
