"""Every algorithm by its config name. Adding one: a class in `builtin.py` and a line here."""

from __future__ import annotations

from ...errors import ConfigProblem
from ...hints import did_you_mean
from .base import Algorithm
from .builtin import (
    NSGA2,
    NSGA3,
    TPE,
    CmaEs,
    GaussianProcess,
    GridSearch,
    QuasiMonteCarlo,
    RandomSearch,
    Sensitivity,
)

ALGORITHMS: dict[str, type[Algorithm]] = {
    "grid": GridSearch,
    "random": RandomSearch,
    "tpe": TPE,
    "cmaes": CmaEs,
    "gp": GaussianProcess,
    "qmc": QuasiMonteCarlo,
    "nsga2": NSGA2,
    "nsga3": NSGA3,
    "sensitivity": Sensitivity,
}


# A top-level key only some algorithms read -> the names of those algorithms.
OWN_KEYS: dict[str, tuple[str, ...]] = {
    key: tuple(name for name, other in ALGORITHMS.items() if key in other.own_keys)
    for algorithm in ALGORITHMS.values()
    for key in algorithm.own_keys
}


class UnknownAlgorithm(ConfigProblem):
    """A name no algorithm is registered under; never silently replaced by another."""

    def __init__(self, name: object):
        choices = ", ".join(ALGORITHMS)
        hint = did_you_mean(str(name), ALGORITHMS)
        super().__init__("algorithm", f"unknown algorithm {name!r}; choose one of {choices}{hint}")


def algorithm_class(name: object) -> type[Algorithm]:
    """The algorithm registered as `name` (raises UnknownAlgorithm, a ConfigProblem)."""
    try:
        return ALGORITHMS[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise UnknownAlgorithm(name) from None


def check_own_keys(name: str, given: list[str]) -> None:
    """Refuses a key of another algorithm's (`base` without `algorithm: sensitivity`)."""
    for key in given:
        owners = OWN_KEYS.get(key, ())
        if owners and name not in owners:
            listed = " or ".join(f"'algorithm: {owner}'" for owner in owners)
            raise ConfigProblem(key, f"only applies to {listed}")
