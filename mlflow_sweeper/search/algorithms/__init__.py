"""Search algorithms: one small class per algorithm behind `Algorithm`, found by name.

`grid` maps slot n to grid point n; `random` over a finite space maps it to a seeded
permutation of the points; every other algorithm asks an Optuna sampler, seeded per slot.
A new algorithm is a subclass of `Algorithm` in `builtin.py` plus one line in `registry.py`.
"""

from .base import Algorithm, slot_seed
from .registry import ALGORITHMS, UnknownAlgorithm, algorithm_class, unknown_message
from .source import PointSource

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "PointSource",
    "UnknownAlgorithm",
    "algorithm_class",
    "slot_seed",
    "unknown_message",
]
