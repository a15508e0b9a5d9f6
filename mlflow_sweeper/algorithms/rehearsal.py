"""A few trials of a sweep's sampler on a study in memory, before anything is written.

Building a sampler checks little: TPE and GP compare `n_startup_trials` only when first asked,
CMA-ES refuses several objectives when first asked and reads `sigma0` at its second trial. A bad
option value would otherwise surface after the study and the parent run exist, and fixing it
would then be refused as a different `sampler_options`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import optuna

from ..space import suggest_point
from .base import Algorithm

if TYPE_CHECKING:
    from ..config import SweepConfig

MIN_TRIALS = 3  # the first ask, the first relative one (CMA-ES), and one after it
MAX_TRIALS = 12  # a larger `n_startup_trials` is rehearsed only this far: a check, not a sweep


def rehearsal_problem(config: SweepConfig) -> tuple[str, str] | None:
    """(config key, problem) when the sweep's sampler fails its first trials, else None.

    The key is `sampler_options` when the sampler works without them, `algorithm` otherwise
    (it cannot search this space or these objectives at all)."""
    from .registry import algorithm_class

    algorithm = algorithm_class(config.algorithm).from_config(config)
    if algorithm.sampler_class is None or algorithm.fixed_point(0) is not None:
        return None  # it decides its points alone
    directions = list(config.objective.directions)
    problem = _rehearse(algorithm, config, directions, config.sampler_options)
    if problem is None:
        return None
    name = algorithm.sampler_class.__name__
    if config.sampler_options and _rehearse(algorithm, config, directions, {}) is None:
        return "sampler_options", f"{name} refused these options when asked for points: {problem}"
    objectives = f"{len(directions)} objectives" if len(directions) > 1 else "this search space"
    return "algorithm", f"{config.algorithm!r} ({name}) cannot search {objectives}: {problem}"


def _rehearse(algorithm: Algorithm, config: SweepConfig, directions: list[str], options: dict) -> str | None:
    startup = options.get("n_startup_trials")
    trials = min(max(MIN_TRIALS, startup + 2 if isinstance(startup, int) else 0), MAX_TRIALS)
    verbosity = optuna.logging.get_verbosity()
    try:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(directions=directions, sampler=algorithm.make_sampler(0, options))
            for number in range(trials):
                trial = study.ask()
                suggest_point(trial, config.space)
                study.tell(trial, _values(number, len(directions)))
    except Exception as exc:  # noqa: BLE001 - the sampler's own word, shown to the user
        return f"{type(exc).__name__}: {exc}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    return None


def _values(number: int, objectives: int) -> Any:
    """Distinct, deterministic values, so that no sampler sees a degenerate history."""
    value = (number * 7919 % 11) / 11.0
    return value if objectives == 1 else [value + index * (1.0 - 2.0 * value) for index in range(objectives)]
