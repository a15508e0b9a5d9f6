"""Constraints on logged metrics: `"latency_ms <= 50"`, told to Optuna as constraint values.

A constraint value is how far a trial's metric is past the bound (Optuna's convention: feasible
when every value is <= 0), so the constraint-aware samplers (TPE, GP, NSGA-II/III) steer away
from infeasible regions by how much they violate. The values live in the trial's system attrs
under Optuna's own key prefix, which `FrozenTrial.constraints` reads; everything that picks a
best trial asks `is_feasible` here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

FEASIBLE_TAG = "sweeper.feasible"
NONE_FEASIBLE = "no feasible trial yet"  # what a best or a front is, with constraints, before one
ATTR_PREFIX = "constraints:"  # Optuna's prefix of a named constraint value (`Trial.set_constraint`)
OPERATORS = ("<=", ">=", "<", ">")
# A metric name holds none of `<`, `>`, `=` (MLflow allows none of them): `lat =< 5` is no constraint.
_PATTERN = re.compile(r"^\s*(?P<metric>[^<>=\s][^<>=]*?)\s*(?P<op><=|>=|<|>)\s*(?P<bound>[^<>=\s]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """`metric op bound`: a logged metric a result must satisfy."""

    metric: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def violation(self, value: float) -> float:
        """Optuna's constraint value: <= 0 when satisfied, else how far past the bound. A strict
        bound (`<`, `>`) met with equality is a violation of the smallest positive amount."""
        excess = value - self.bound if self.op in ("<=", "<") else self.bound - value
        if self.op in ("<", ">") and excess == 0:
            return math.ulp(0.0) or 1e-300
        return float(excess)


class ConstraintError(ValueError):
    """A constraint that does not read as `<metric> <op> <number>`; `index` is its position."""

    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(message)


def parse_constraint(text: Any, index: int = 0) -> Constraint:
    if not isinstance(text, str):
        raise ConstraintError(index, f"expected a string like 'latency_ms <= 50', got {text!r}")
    match = _PATTERN.match(text)
    if match is None:
        raise ConstraintError(
            index, f"{text!r} is not '<metric> <op> <number>' with op one of {', '.join(OPERATORS)}"
        )
    try:
        bound = float(match["bound"])
    except ValueError:
        raise ConstraintError(index, f"{text!r}: the bound {match['bound']!r} is not a number") from None
    if not math.isfinite(bound):
        raise ConstraintError(index, f"{text!r}: the bound must be a finite number")
    metric = match["metric"]
    if len(metric) > 2 and metric[0] == metric[-1] == "`":  # quoted as in an MLflow filter string
        metric = metric[1:-1]
    if "`" in metric:
        shown = metric.strip("`")
        raise ConstraintError(index, f"{text!r}: the metric's backticks do not enclose it (`{shown}`)")
    return Constraint(metric, match["op"], bound)


def parse_constraints(value: Any) -> tuple[Constraint, ...]:
    """A list of constraint strings; raises ConstraintError naming the first bad one."""
    if not isinstance(value, list):
        raise ConstraintError(-1, "expected a list of strings like 'latency_ms <= 50'")
    constraints = tuple(parse_constraint(item, i) for i, item in enumerate(value))
    texts = [c.text for c in constraints]
    for i, text in enumerate(texts):
        if text in texts[:i]:
            raise ConstraintError(i, f"{value[i]!r} is listed twice")
    return constraints


def metric_names(constraints: Sequence[Constraint]) -> tuple[str, ...]:
    """The metrics to read from a trial's run, each once, in order."""
    return tuple(dict.fromkeys(c.metric for c in constraints))


@dataclass(frozen=True)
class Judgement:
    """What a trial's constraint metrics say: its constraint values, or the metrics it lacks."""

    violations: dict[str, float]
    missing: tuple[str, ...] = ()

    @property
    def feasible(self) -> bool:
        return not self.missing and satisfied(self.violations)

    @property
    def violated(self) -> list[str]:
        """The constraints the trial's metrics do not meet."""
        return [text for text, value in self.violations.items() if value > 0]


def judge(constraints: Sequence[Constraint], metrics: Mapping[str, float | None]) -> Judgement:
    missing = tuple(
        name for name in metric_names(constraints) if metrics.get(name) is None or math.isnan(metrics[name])
    )
    if missing:
        return Judgement({}, missing)
    return Judgement({c.text: c.violation(float(metrics[c.metric])) for c in constraints})  # type: ignore[arg-type]


def trial_attrs(judgement: Judgement) -> dict[str, float]:
    """The trial system attrs that carry the constraint values, as `Trial.set_constraint` names them."""
    return {ATTR_PREFIX + key: value for key, value in judgement.violations.items()}


def feasible_text(feasible: bool) -> str:
    """Feasibility as the run tag `sweeper.feasible` and trials.csv write it: true or false."""
    return str(feasible).lower()


def satisfied(violations: Mapping[str, float]) -> bool:
    """Constraint values are met when none is above 0 (Optuna's reading); none at all are met."""
    return all(value <= 0 for value in violations.values())


def is_feasible(trial: FrozenTrial) -> bool:
    """No constraint value above 0 (a trial of an unconstrained sweep is feasible)."""
    return satisfied(trial.constraints)


def feasible_only(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if is_feasible(t)]


def constraints_func(constraints: Sequence[Constraint]) -> Callable[[FrozenTrial], Sequence[float]]:
    """What a constraint-aware sampler is given: it only switches the sampler's constraint
    handling on, since the values are already stored with each trial when it completes."""
    keys = [c.text for c in constraints]

    def stored(trial: FrozenTrial) -> Sequence[float]:
        values = trial.constraints
        return tuple(float(values.get(key, 0.0)) for key in keys)

    return stored
