"""Everything the charts of one report read, computed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import optuna
from optuna.trial import FrozenTrial

from ..config import SweepConfig
from .importance import CachedEvaluator, make_evaluator, target_of
from .objectives import Objectives
from .sensitivity import ParameterEffect, parameter_effects
from .study_copy import complete_count, with_every_parameter


@dataclass
class ReportContext:
    config: SweepConfig
    trials: list[FrozenTrial]
    objectives: Objectives
    study: optuna.Study | None  # in memory; None when the sweep has no objective
    evaluators: list[CachedEvaluator] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.evaluators:
            self.evaluators = [CachedEvaluator(make_evaluator()) for _ in self.objectives.names]

    @cached_property
    def importance_study(self) -> optuna.Study | None:
        """What importances are evaluated on: conditional parameters included (see
        `with_every_parameter`)."""
        return None if self.study is None else with_every_parameter(self.study)

    @cached_property
    def complete(self) -> int:
        return complete_count(self.study)

    @property
    def sensitivity(self) -> bool:
        return self.config.algorithm == "sensitivity" and len(self.objectives.names) == 1

    @property
    def pareto(self) -> bool:
        return self.objectives.multi and len(self.objectives.names) <= 3

    @cached_property
    def effects(self) -> list[ParameterEffect]:
        return parameter_effects(self.study.trials if self.study is not None else [], self._plan_base())

    def _plan_base(self) -> dict | None:
        """The base point of the sensitivity plan the sweep ran, as the parent's metrics use it."""
        if self.config.algorithm != "sensitivity":
            return None
        from ..search.sensitivity import DEFAULT_POINTS, sensitivity_plan

        points = getattr(self.config, "points", None) or DEFAULT_POINTS
        return sensitivity_plan(self.config.space, getattr(self.config, "base", None), points)[0]

    def per_objective(self):
        """(index, metric name, target, evaluator) for each objective."""
        multi = self.objectives.multi
        for index, name in enumerate(self.objectives.names):
            yield index, name, target_of(index, multi), self.evaluators[index]
