"""A few trials of a sweep's sampler on a study in memory, before a sweep writes anything.

Building a sampler checks little: TPE and GP compare `n_startup_trials` only when first asked,
CMA-ES refuses several objectives when first asked and reads `sigma0` at its second trial. A bad
option value would otherwise surface after the study and the parent run exist, and fixing it
would then be refused as a different `sampler_options`.

Only a sweep rehearses: `status`, `delete` and `report` need neither the sampler nor the
packages it imports (`gp` imports PyTorch).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import optuna

from ...errors import ConfigProblem
from ..space import suggest_point
from .base import Algorithm
from .registry import algorithm_class

if TYPE_CHECKING:
    from ...config import SweepConfig

MIN_TRIALS = 3  # the first ask, the first relative one (CMA-ES), and one after it
MAX_TRIALS = 12  # a check, not a sweep
SHORT_WARM_UP = {"n_startup_trials": 2, "population_size": 4}  # warm-ups as short as rehearsed


def rehearse(config: SweepConfig) -> None:
    """Raises ConfigProblem when the sweep's sampler cannot run.

    In order: a package the algorithm needs is missing (key `algorithm`); the sampler refuses
    `sampler_options` when built; it fails its first trials. A failure in the trials is put on
    `sampler_options` when the sampler works without them, on `algorithm` otherwise (it cannot
    search this space or these objectives at all)."""
    algorithm_type = algorithm_class(config.algorithm)
    missing = algorithm_type.missing_requirement()
    if missing:
        raise ConfigProblem("algorithm", missing)
    algorithm = algorithm_type.from_config(config)
    if algorithm.sampler_class is None:
        return  # it decides its points alone
    name = algorithm.sampler_class.__name__
    try:
        with _quiet():
            algorithm.make_sampler(0, config.sampler_options, quiet=True)
    except Exception as exc:  # noqa: BLE001 - the sampler's own word on its options
        raise ConfigProblem(
            "sampler_options", f"{name} refused these options: {type(exc).__name__}: {exc}"
        ) from None
    if algorithm.fixed_point(0) is not None:
        return
    directions = list(config.objective.directions)
    problem = _rehearse(algorithm, config, directions, config.sampler_options)
    if problem is None:
        return
    if config.sampler_options and _rehearse(algorithm, config, directions, {}) is None:
        raise ConfigProblem(
            "sampler_options", f"{name} refused these options when asked for points: {problem}"
        )
    objectives = f"{len(directions)} objectives" if len(directions) > 1 else "this search space"
    raise ConfigProblem("algorithm", f"{config.algorithm!r} ({name}) cannot search {objectives}: {problem}")


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's log and warnings silenced: a rehearsal is not the sweep."""
    verbosity = optuna.logging.get_verbosity()
    try:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _rehearse(algorithm: Algorithm, config: SweepConfig, directions: list[str], options: dict) -> str | None:
    options = _shortened(algorithm, options)
    startup = options.get("n_startup_trials")
    population = options.get("population_size")
    trials = max(
        MIN_TRIALS,
        startup + 1 if _is_int(startup) else 0,  # the first trial of the model
        population + 1 if _is_int(population) else 0,  # the first child of a bred generation
    )
    try:
        with _quiet():
            study = optuna.create_study(
                directions=directions, sampler=algorithm.make_sampler(0, options, quiet=True)
            )
            for number in range(min(trials, MAX_TRIALS)):
                trial = study.ask()
                suggest_point(trial, config.space)
                study.tell(trial, _values(number, len(directions)))
    except Exception as exc:  # noqa: BLE001 - the sampler's own word, shown to the user
        return f"{type(exc).__name__}: {exc}"
    return None


def _shortened(algorithm: Algorithm, options: dict) -> dict:
    """`options` with the sampler's warm-up (`n_startup_trials`, `population_size`) cut short,
    so that its model, where most options are read, runs within a few trials. A value of the
    wrong type is kept: the rehearsal must refuse it."""
    parameters = {p.name: p for p in algorithm.option_parameters()}
    shortened = dict(options)
    for name, short in SHORT_WARM_UP.items():
        if name in parameters:
            value = options.get(name, parameters[name].default)
            if _is_int(value) and value > short:
                shortened[name] = short
    return shortened


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _values(number: int, objectives: int) -> Any:
    """Distinct, deterministic values, so that no sampler sees a degenerate history."""
    value = (number * 7919 % 11) / 11.0
    return value if objectives == 1 else [value + index * (1.0 - 2.0 * value) for index in range(objectives)]
