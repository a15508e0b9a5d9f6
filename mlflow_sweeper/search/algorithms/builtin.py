"""The algorithms the sweeper ships: one small class each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ...errors import ConfigProblem
from ..grid import Permutation
from ..sensitivity import (
    DEFAULT_POINTS,
    REPORT_SECTION,
    parameter_effects,
    parse_sensitivity,
    sensitivity_plan,
    sensitivity_spread,
    unswept_at_base,
)
from ..space import SearchSpace
from ..values import Scalar, point_key
from .base import Algorithm, sweep_seed
from .believer import BelievingTPESampler

if TYPE_CHECKING:
    from ...config import Objective, SweepConfig


class GridSearch(Algorithm):
    """Slot n runs grid point n: every valid combination once (conditions respected), in config
    order."""

    name = "grid"
    needs_max_trials = False
    records_grid = True

    def __init__(self, space: SearchSpace, seed: int | None):
        super().__init__(space, seed)
        self.grid = space.grid() if space.axes else None

    @classmethod
    def check_space(cls, space: SearchSpace) -> None:
        if not space.axes:
            raise ConfigProblem("parameters", "a grid needs at least one list or stepped range to sweep")
        if space.grid_axes() is None:
            name = next(n for n, a in space.axes.items() if a.grid_values() is None)
            raise ConfigProblem(f"parameters.{name}.step", "a grid needs a 'step' for a float range")

    def budget(self, max_trials: int | None) -> int:
        assert self.grid is not None
        return min(self.grid.size, max_trials or self.grid.size)

    def fixed_point(self, slot: int) -> dict[str, Scalar] | None:
        assert self.grid is not None
        return self.grid.point(slot)

    def slot_of(self, point: dict[str, Scalar]) -> int | None:
        return None if self.grid is None else self.grid.index_of(point)

    def slot_count(self) -> int | None:
        return None if self.grid is None else self.grid.size


class RandomSearch(Algorithm):
    """Over a finite space, a seeded permutation of its points (no repeats, ends when exhausted);
    over a continuous one, Optuna's RandomSampler."""

    name = "random"
    sampler_class = optuna.samplers.RandomSampler
    needs_axes = False

    def __init__(self, space: SearchSpace, seed: int | None):
        super().__init__(space, seed)
        self.grid = space.grid() if space.axes else None
        self.records_grid = self.grid is not None
        self.permutation = Permutation(self.grid.size, seed) if self.grid is not None else None

    def budget(self, max_trials: int | None) -> int:
        budget = super().budget(max_trials)
        return budget if self.grid is None else min(self.grid.size, budget)

    def fixed_point(self, slot: int) -> dict[str, Scalar] | None:
        if self.grid is None or self.permutation is None:
            return None
        return self.grid.point(self.permutation[slot])

    def slot_of(self, point: dict[str, Scalar]) -> int | None:
        if self.grid is None or self.permutation is None:
            return None
        index = self.grid.index_of(point)
        return None if index is None else self.permutation.index_of(index)

    def slot_count(self) -> int | None:
        return None if self.grid is None else self.grid.size


class TPE(Algorithm):
    """Tree-structured Parzen Estimator; random for its first `n_startup_trials` (10) trials.

    Trials still running when a point is drawn are believed to score what the finished trials
    predict for them (`BelievingTPESampler`), unless `sampler_options` sets Optuna's own
    `constant_liar` (true: each counts as the worst result; false: they are ignored)."""

    name = "tpe"
    sampler_class = optuna.samplers.TPESampler
    learns = True

    def sampler_class_for(self, options: dict[str, Any]) -> type[optuna.samplers.BaseSampler]:
        if "constant_liar" in options:
            return optuna.samplers.TPESampler
        return BelievingTPESampler


class CmaEs(Algorithm):
    """CMA-ES for continuous and integer ranges; list parameters are sampled at random."""

    name = "cmaes"
    sampler_class = optuna.samplers.CmaEsSampler
    learns = True


class GaussianProcess(Algorithm):
    """Bayesian optimisation with a Gaussian process; needs PyTorch."""

    name = "gp"
    sampler_class = optuna.samplers.GPSampler
    learns = True
    requires = ("torch", "gp")


class QuasiMonteCarlo(Algorithm):
    """A low-discrepancy sequence; Optuna counts its position in the study, so every slot's
    sampler must share the sweep's seed, or each would start its own sequence."""

    name = "qmc"
    sampler_class = optuna.samplers.QMCSampler
    seed_per_slot = False


class NSGA2(Algorithm):
    name = "nsga2"
    sampler_class = optuna.samplers.NSGAIISampler
    learns = True


class NSGA3(Algorithm):
    name = "nsga3"
    sampler_class = optuna.samplers.NSGAIIISampler
    learns = True


class Sensitivity(Algorithm):
    """One-at-a-time around a base point: the base once, then each swept parameter alone at
    each of its other values. The plan is fixed, so its length is the budget. At the close the
    parent gets `sensitivity/<param>`, the objective's spread; the report a chart of it."""

    name = "sensitivity"
    needs_max_trials = False
    derived_budget = True
    own_keys = ("base", "points")

    def __init__(
        self,
        space: SearchSpace,
        seed: int | None,
        base: dict[str, Scalar] | None = None,
        points: int | None = None,
    ):
        super().__init__(space, seed)
        self.plan = sensitivity_plan(space, base, points or DEFAULT_POINTS)
        self.base = base

    def notes(self) -> list[str]:
        unswept = unswept_at_base(self.space, self.base)
        if not unswept:
            return []
        names = ", ".join(unswept)
        return [
            f"not swept: {names}, which {'does' if len(unswept) == 1 else 'do'} not exist at the base "
            "point (a `when` that does not hold there); set `base` so that it holds to sweep "
            f"{'it' if len(unswept) == 1 else 'them'}"
        ]

    @classmethod
    def from_config(cls, config: SweepConfig) -> Sensitivity:
        return cls(config.space, sweep_seed(config), config.base, config.points)

    @classmethod
    def load_own_keys(cls, space: SearchSpace, given: dict[str, Any]) -> dict[str, Any]:
        """`base` and `points`, checked against the space (`points` kept only when given, so
        that the fingerprint of a sweep that leaves it out does not change)."""
        base, points = parse_sensitivity(space, given.get("base"), given.get("points"))
        return {"base": base or None, "points": points if "points" in given else None}

    @classmethod
    def check_objective(cls, objective: Objective) -> None:
        """Sensitivity measures the spread of one objective per parameter."""
        if objective.multi:
            raise ConfigProblem(
                "spec.metrics",
                "algorithm 'sensitivity' measures the spread of one objective: give spec.metric and "
                "spec.direction instead (or sweep each metric in a sweep of its own)",
            )
        if objective.metric is None:
            raise ConfigProblem(
                "spec.metric",
                "algorithm 'sensitivity' measures how much each parameter moves an objective: "
                "give spec.metric (and spec.direction)",
            )

    def budget(self, max_trials: int | None) -> int:
        return len(self.plan)

    def fixed_point(self, slot: int) -> dict[str, Scalar] | None:
        return self.plan[slot]

    def slot_of(self, point: dict[str, Scalar]) -> int | None:
        key = point_key(point)
        return next((slot for slot, planned in enumerate(self.plan) if point_key(planned) == key), None)

    def slot_count(self) -> int | None:
        return len(self.plan)

    def close_metrics(self, trials: list[FrozenTrial]) -> dict[str, float]:
        """`sensitivity/<param>`: the objective's spread over the trials that moved that
        parameter alone, the base trial included."""
        if not self.plan:
            return {}
        rows = [(dict(t.params), t.value) for t in trials if t.state == TrialState.COMPLETE]
        spread = sensitivity_spread(rows, base=self.plan[0])
        return {f"sensitivity/{name}": value for name, value in spread.items()}

    def report_sections(self, trials: list[FrozenTrial]) -> dict[str, Any]:
        """The "sensitivity" chart: each parameter's effect around the plan's base point."""
        effects = parameter_effects(trials, self.plan[0] if self.plan else None)
        return {REPORT_SECTION: effects} if effects else {}
