"""Which parameters budget slot `n` runs: the config's algorithm, asked by the coordination."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution

from ..space import Scalar
from .registry import algorithm_class

if TYPE_CHECKING:
    from ..config import SweepConfig


class PointSource:
    """The sweep's algorithm bound to its config: budget, fixed points, per-slot samplers."""

    def __init__(self, config: SweepConfig):
        self.config = config
        self.algorithm = config.algorithm
        self.strategy = algorithm_class(config.algorithm)(config.space, config.seed)

    @property
    def grid(self):
        """The finite space's points by index, or None (continuous, or nothing to search)."""
        return getattr(self.strategy, "grid", None)

    @property
    def budget(self) -> int:
        """Slots in the whole sweep, across every agent."""
        return self.strategy.budget(self.config.max_trials)

    @cached_property
    def distributions(self) -> dict[str, BaseDistribution]:
        return self.config.space.distributions()

    def fixed_point(self, slot: int) -> dict[str, Scalar] | None:
        """The point of `slot` when the algorithm decides it alone; None to ask the sampler."""
        return self.strategy.fixed_point(slot)

    def distributions_for(self, params: dict) -> dict[str, BaseDistribution]:
        """Distributions to record fixed points under: the grid's value lists."""
        grid = self.grid
        if grid is not None:
            return {
                name: CategoricalDistribution(list(values))
                for name, values in zip(grid.names, grid.values, strict=True)
            }
        return {name: self.distributions[name] for name in params}

    def sampler(self, slot: int) -> optuna.samplers.BaseSampler:
        """A sampler seeded per slot: agents sharing a seed must not draw the same values."""
        return self.strategy.sampler_for(slot, dict(self.config.sampler_options))
