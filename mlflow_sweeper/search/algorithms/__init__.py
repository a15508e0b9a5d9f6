"""Search algorithms: one small class per algorithm behind `Algorithm`, found by name.

`grid` maps slot n to grid point n; `random` over a finite space maps it to a seeded
permutation of the points; every other algorithm asks an Optuna sampler, seeded per slot.
A new algorithm is a subclass of `Algorithm` in `builtin.py` plus one line in `registry.py`;
everything else (the schema's doc, the README check, the config's checks) follows the registry.
"""

from .base import Algorithm, slot_seed
from .registry import ALGORITHMS, OWN_KEYS, UnknownAlgorithm, algorithm_class, check_own_keys
from .rehearsal import rehearse
from .source import PointSource

__all__ = [
    "ALGORITHMS",
    "OWN_KEYS",
    "Algorithm",
    "PointSource",
    "UnknownAlgorithm",
    "algorithm_class",
    "check_own_keys",
    "rehearse",
    "slot_seed",
]
