"""Which parameters budget slot `n` runs: the config's algorithm, asked by the coordination."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import optuna
from optuna.distributions import BaseDistribution

from ... import compat
from ..values import Scalar
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
        self._budget = self.strategy.budget(config.max_trials)

    @property
    def grid(self):
        """The finite space's points by index, or None (continuous, or nothing to search)."""
        return self.strategy.grid

    @property
    def budget(self) -> int:
        """Slots in the whole sweep, across every agent (past those earlier results hold)."""
        return self._budget

    def hold(self, slots: frozenset[int]) -> None:
        """The slots whose points earlier results hold (a warm start): they use no budget."""
        self._budget = self.strategy.budget_past(self.config.max_trials, slots)

    def slot_of(self, point: dict[str, Scalar]) -> int | None:
        """The slot whose fixed point is `point`, or None."""
        return self.strategy.slot_of(point)

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
        sampler = self.strategy.sampler_for(slot, constrained_options(self.config, self.strategy))
        compat.carry_learned_state(self._last_sampler, sampler)
        self._last_sampler = sampler
        return sampler


def constrained_options(config: SweepConfig, strategy) -> dict:
    """`sampler_options`, plus a `constraints_func` for a constraint-aware sampler when the sweep
    has `spec.constraints` (the sampler then reads each trial's stored constraint values)."""
    options = dict(config.sampler_options)
    constraints = config.objective.constraints
    accepts = "constraints_func" in {p.name for p in strategy.option_parameters()}
    if constraints and accepts and "constraints_func" not in options:
        from ...constraints import constraints_func

        options["constraints_func"] = constraints_func(constraints)
    return options
