"""Algorithms: which parameters budget slot `n` runs.

`grid` maps slot n to grid point n; `random` over a finite space maps it to a seeded
permutation of the points (no repeats, stops when exhausted); everything else asks an Optuna
sampler. Only the sampler path needs the trial history; the others cost O(1) per slot.
"""

from __future__ import annotations

from functools import cached_property

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution

from .config import SweepConfig
from .space import Grid, Permutation, Scalar


class PointSource:
    def __init__(self, config: SweepConfig):
        self.config = config
        self.algorithm = config.algorithm
        grid_axes = config.space.grid_axes()
        self.grid = Grid(grid_axes) if grid_axes is not None and config.space.axes else None
        self.permutation = (
            Permutation(self.grid.size, config.seed)
            if self.grid is not None and self.algorithm == "random"
            else None
        )

    @property
    def budget(self) -> int:
        """Slots in the whole sweep, across every agent."""
        if self.algorithm == "grid":
            assert self.grid is not None
            return min(self.grid.size, self.config.max_trials or self.grid.size)
        assert self.config.max_trials is not None
        if self.permutation is not None:
            return min(self.grid.size, self.config.max_trials)  # type: ignore[union-attr]
        return self.config.max_trials

    @cached_property
    def distributions(self) -> dict[str, BaseDistribution]:
        return self.config.space.distributions()

    def fixed_point(self, slot: int) -> dict[str, Scalar] | None:
        """The point of `slot` when the algorithm decides it alone; None to ask the sampler."""
        if self.algorithm == "grid":
            return self.grid.point(slot)  # type: ignore[union-attr]
        if self.permutation is not None:
            return self.grid.point(self.permutation[slot])  # type: ignore[union-attr]
        return None

    def distributions_for(self, params: dict) -> dict[str, BaseDistribution]:
        """Distributions to record fixed points under: the grid's value lists."""
        if self.grid is not None:
            return {
                name: CategoricalDistribution(list(values))
                for name, values in zip(self.grid.names, self.grid.values, strict=True)
            }
        return {name: self.distributions[name] for name in params}

    def sampler(self, slot: int) -> optuna.samplers.BaseSampler:
        """A sampler seeded per slot: agents sharing a seed must not draw the same values."""
        seed = None if self.config.seed is None else (self.config.seed * 1_000_003 + slot) % 2**32
        if self.algorithm == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)
