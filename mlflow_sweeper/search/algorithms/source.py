"""Which parameters budget slot `n` runs: the config's algorithm, asked by the coordination."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import optuna
from optuna.distributions import BaseDistribution

from ... import compat
from ..space import Scalar
from .registry import algorithm_class

if TYPE_CHECKING:
    from ...config import SweepConfig


class PointSource:
    """The sweep's algorithm bound to its config: budget, fixed points, per-slot samplers."""

    def __init__(self, config: SweepConfig):
        self.config = config
        self.algorithm = config.algorithm
        self.strategy = algorithm_class(config.algorithm).from_config(config)
        self._last_sampler: optuna.samplers.BaseSampler | None = None  # handing on what it learned

    @property
    def grid(self):
        """The finite space's points by index, or None (continuous, or nothing to search)."""
        return self.strategy.grid

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
        """Distributions to record a fixed point under, for exactly the parameters it has (Optuna
        refuses a trial whose distributions name an absent parameter): a grid's value lists, or
        the space's own distributions."""
        if self.strategy.records_grid:
            return self.config.space.grid_distributions(params)
        return {name: self.distributions[name] for name in params}

    def sampler(self, slot: int) -> optuna.samplers.BaseSampler:
        """A sampler seeded per slot: agents sharing a seed must not draw the same values.

        Each gets what the previous one learned (its search-space caches, GP's fitted kernels),
        so it reads only the trials added since; they must therefore be asked one at a time.
        """
        sampler = self.strategy.sampler_for(slot, dict(self.config.sampler_options))
        compat.carry_learned_state(self._last_sampler, sampler)
        self._last_sampler = sampler
        return sampler
