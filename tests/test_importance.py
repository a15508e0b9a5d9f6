"""Parameter importances the report logs and `refine` reads: numbers, or none."""

from __future__ import annotations

import math

import optuna

from mlflow_sweeper.report.importance import importances
from mlflow_sweeper.search.importance import make_evaluator


def _study(values: list[float]) -> optuna.Study:
    study = optuna.create_study()
    for i, value in enumerate(values):
        trial = optuna.trial.create_trial(
            params={"v": str(i), "w": float(i)},
            distributions={
                "v": optuna.distributions.CategoricalDistribution([str(j) for j in range(len(values))]),
                "w": optuna.distributions.FloatDistribution(0.0, len(values)),
            },
            value=value,
        )
        study.add_trial(trial)
    return study


def test_importances_of_ordinary_values_are_finite_and_sum_to_one():
    found = importances(_study([0.5, 2.0, 0.1, 0.7]), make_evaluator(), 0, False)
    assert set(found) == {"v", "w"} and math.isclose(sum(found.values()), 1.0)


def test_values_that_overflow_the_evaluator_give_no_importances_rather_than_nan():
    """Finite objectives as large as 3e200: the evaluator's variances overflow into NaN."""
    assert importances(_study([0.5, 3e200, 0.1, 1e308]), make_evaluator(), 0, False) == {}
