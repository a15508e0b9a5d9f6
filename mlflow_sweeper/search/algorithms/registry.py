"""Every algorithm by its config name. Adding one: a class in `builtin.py` and a line here."""

from __future__ import annotations

import difflib

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


class UnknownAlgorithm(KeyError):
    """A name no algorithm is registered under; never silently replaced by another."""

    def __str__(self) -> str:
        return str(self.args[0])


def unknown_message(name: object) -> str:
    close = difflib.get_close_matches(str(name), list(ALGORITHMS), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}{hint}"


def algorithm_class(name: str) -> type[Algorithm]:
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise UnknownAlgorithm(unknown_message(name)) from None
