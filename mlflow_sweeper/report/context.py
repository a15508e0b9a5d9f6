"""Everything the charts of one report read, computed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ..config import Objective, SweepConfig
from ..search.algorithms import Algorithm, algorithm_class
from .importance import CachedEvaluator, make_evaluator, target_of
from .study_copy import complete_count, with_every_parameter


@dataclass
class ReportContext:
    config: SweepConfig
    trials: list[FrozenTrial]
    objectives: Objective  # the config's, with the stored study's directions
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
    def pareto(self) -> bool:
        return self.objectives.multi and len(self.objectives.names) <= 3

    @cached_property
    def algorithm(self) -> Algorithm:
        return algorithm_class(self.config.algorithm).from_config(self.config)

    @cached_property
    def sections(self) -> dict[str, Any]:
        """The sections only the sweep's algorithm has (a sensitivity sweep's chart), by the key
        of the chart that draws each: asked of the algorithm, for a single objective."""
        if self.study is None or len(self.objectives.names) != 1:
            return {}
        return self.algorithm.report_sections(self.study.trials)

    def per_objective(self):
        """(index, metric name, target, evaluator) for each objective."""
        multi = self.objectives.multi
        for index, name in enumerate(self.objectives.names):
            yield index, name, target_of(index, multi), self.evaluators[index]
