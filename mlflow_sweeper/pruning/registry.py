"""The pruners a sweep may name, and the validation of its `early_stopping` section.

One `PrunerKind` per name, in the manner of a dispatch table: the Optuna class, its options
(read from the constructor's signature, so they follow Optuna) and how to build it. A config is
checked in full before anything is written: unknown names and options, wrong types, and values
Optuna itself refuses (found by constructing the pruner once) all become one `ConfigProblem`.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import optuna
from optuna.pruners import BasePruner

from ..errors import ConfigProblem, in_config_file
from ..hints import did_you_mean
from ..option_types import declared_types, type_problem

DEFAULT_INTERVAL = 10.0
KEYS = ("pruner", "options", "interval")
WRAPPED_KEYS = ("pruner", "options")
_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class PrunerKind:
    """One pruner name of the config: its Optuna class and the options users may give."""

    name: str
    cls: type[BasePruner]
    summary: str
    # Constructor arguments the config does not set directly (filled by `build`).
    hidden: tuple[str, ...] = ()
    # Extra config options, not constructor arguments, with a one-line description.
    extra: Mapping[str, str] = field(default_factory=dict)
    # Further checks Optuna only makes lazily (at the first `prune`), run on the options.
    check: Callable[[dict[str, Any]], None] | None = None
    # Turns validated config options into constructor arguments (default: as they are).
    kwargs: Callable[[dict[str, Any]], dict[str, Any]] = dict

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The constructor's keyword arguments a config may set, in signature order."""
        params = inspect.signature(self.cls.__init__).parameters
        return {n: p for n, p in params.items() if n != "self" and n not in self.hidden}

    def option_names(self) -> list[str]:
        return [*self.parameters(), *self.extra]

    def required(self) -> list[str]:
        return [n for n, p in self.parameters().items() if p.default is _MISSING]

    def types(self) -> dict[str, Any]:
        hints = declared_types(self.cls.__init__)
        return {n: hints[n] for n in self.parameters() if n in hints}

    def build(self, options: Mapping[str, Any]) -> BasePruner:
        """A new pruner (pruners keep state, e.g. Hyperband's brackets: one per monitor)."""
        kwargs = self.kwargs(dict(options))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. ExperimentalWarning: not the user's concern here
            return self.cls(**kwargs)


def _patient_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """`wrapped: {pruner, options}` becomes the pruner object; absent, PatientPruner alone
    (`wrapped_pruner=None`: stop after `patience` steps without improvement)."""
    wrapped = options.pop("wrapped", None)
    options["wrapped_pruner"] = (
        None if wrapped is None else PRUNERS[wrapped["pruner"]].build(wrapped.get("options", {}))
    )
    return options


def _check_hyperband(options: dict[str, Any]) -> None:
    """Hyperband builds its successive-halving brackets only at the first `prune`: check them now."""
    optuna.pruners.SuccessiveHalvingPruner(
        min_resource=options.get("min_resource", 1),
        reduction_factor=options.get("reduction_factor", 3),
        bootstrap_count=options.get("bootstrap_count", 0),
    )
    max_resource = options.get("max_resource", "auto")
    if isinstance(max_resource, int) and max_resource < options.get("min_resource", 1):
        raise ValueError(f"max_resource ({max_resource}) must be at least min_resource")


PRUNERS: dict[str, PrunerKind] = {
    kind.name: kind
    for kind in (
        PrunerKind(
            "median",
            optuna.pruners.MedianPruner,
            "stop a trial whose value is worse than the median of earlier trials at the same step",
        ),
        PrunerKind(
            "percentile",
            optuna.pruners.PercentilePruner,
            "stop a trial outside the best `percentile` % of earlier trials at the same step",
        ),
        PrunerKind(
            "successive_halving",
            optuna.pruners.SuccessiveHalvingPruner,
            "asynchronous successive halving: keep the best 1/reduction_factor at each rung",
        ),
        PrunerKind(
            "hyperband",
            optuna.pruners.HyperbandPruner,
            "successive halving over several brackets of minimum resource",
            check=_check_hyperband,
        ),
        PrunerKind(
            "threshold",
            optuna.pruners.ThresholdPruner,
            "stop a trial whose value leaves [lower, upper]",
        ),
        PrunerKind(
            "wilcoxon",
            optuna.pruners.WilcoxonPruner,
            "stop a trial significantly worse than the best one over the same steps (Wilcoxon test)",
        ),
        PrunerKind(
            "patient",
            optuna.pruners.PatientPruner,
            "stop after `patience` steps without improvement; with `wrapped`, only when that "
            "pruner also says so",
            hidden=("wrapped_pruner",),
            extra={"wrapped": "{pruner: NAME, options: {...}}: the pruner to consult once patience ran out"},
            kwargs=_patient_kwargs,
        ),
    )
}


@dataclass(frozen=True)
class EarlyStopping:
    """A validated `early_stopping` section."""

    pruner: str
    options: dict[str, Any] = field(default_factory=dict)
    interval: float = DEFAULT_INTERVAL

    def make_pruner(self) -> BasePruner:
        return PRUNERS[self.pruner].build(self.options)

    def describe(self) -> dict[str, Any]:
        """What defines the pruning for the sweep's fingerprint (the interval does not)."""
        return {"pruner": self.pruner, "options": self.options}


def _parse_pruner(
    raw: Mapping[str, Any], *, key: str, allowed: tuple[str, ...]
) -> tuple[str, dict[str, Any]]:
    """Validate `{pruner, options}` (and nothing else of `allowed`); returns the name and options."""
    for name in raw:
        if not isinstance(name, str) or name not in allowed:
            raise ConfigProblem(f"{key}.{name}", "unknown key" + did_you_mean(str(name), list(allowed)))
    if "pruner" not in raw:
        raise ConfigProblem(f"{key}.pruner", f"missing: choose one of {', '.join(PRUNERS)}")
    name = raw["pruner"]
    if not isinstance(name, str) or name not in PRUNERS:
        raise ConfigProblem(
            f"{key}.pruner",
            f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}"
            + did_you_mean(str(name), list(PRUNERS)),
        )
    kind = PRUNERS[name]
    options = raw.get("options")
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise ConfigProblem(f"{key}.options", f"expected a mapping of {name} pruner options, got {options!r}")
    options = dict(options)
    valid = kind.option_names()
    listing = ", ".join(valid) if valid else "none"
    for option in options:
        if option not in valid:
            raise ConfigProblem(
                f"{key}.options.{option}",
                f"unknown option of the {name} pruner{did_you_mean(str(option), valid)}; valid: {listing}",
            )
    for option in kind.required():
        if option not in options:
            raise ConfigProblem(f"{key}.options.{option}", f"missing: the {name} pruner needs it")
    hints = kind.types()
    for option, value in options.items():
        if option in hints:
            expected = type_problem(value, hints[option])
            if expected:
                raise ConfigProblem(f"{key}.options.{option}", f"expected {expected}, got {value!r}")
    if "wrapped" in options:
        wrapped = options["wrapped"]
        if not isinstance(wrapped, Mapping):
            raise ConfigProblem(f"{key}.options.wrapped", "expected a mapping {pruner: NAME, options: {...}}")
        inner_name, inner_options = _parse_pruner(wrapped, key=f"{key}.options.wrapped", allowed=WRAPPED_KEYS)
        options["wrapped"] = {"pruner": inner_name, "options": inner_options}
    try:
        if kind.check is not None:
            kind.check(options)
        kind.build(options)
    except (TypeError, ValueError) as exc:
        raise ConfigProblem(f"{key}.options", f"the {name} pruner refuses these options: {exc}") from None
    return name, options


def parse_early_stopping(
    raw: Any, *, objective_count: int, path: str | PathLike[str] | None = None
) -> EarlyStopping | None:
    """Validate a config's `early_stopping` value (None when absent); raises ConfigProblem, or,
    given the config file's `path`, the ConfigError that names it.

    `objective_count` is the number of metrics in `spec`: pruning needs exactly one, since it
    compares one metric's history across trials.
    """
    if path is not None:
        with in_config_file(path):
            return parse_early_stopping(raw, objective_count=objective_count)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigProblem("early_stopping", f"expected a mapping with 'pruner', got {raw!r}")
    if objective_count == 0:
        raise ConfigProblem(
            "early_stopping", "needs 'spec.metric': the metric whose history the pruner reads"
        )
    if objective_count > 1:
        raise ConfigProblem(
            "early_stopping",
            "works with one objective only; remove it or give 'spec' a single 'metric'",
        )
    name, options = _parse_pruner(raw, key="early_stopping", allowed=KEYS)
    interval = raw.get("interval", DEFAULT_INTERVAL)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or interval <= 0
    ):
        raise ConfigProblem(
            "early_stopping.interval", f"expected a positive number of seconds, got {interval!r}"
        )
    return EarlyStopping(name, options, float(interval))
