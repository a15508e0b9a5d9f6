"""One-at-a-time sensitivity, read back from the trials: for each parameter, the objective at
each of its values while every other parameter sits at the base point.

The spread is `mlflow_sweeper.sensitivity.sensitivity_spread`, the function that gives the
parent's `sensitivity/<param>` metrics, so the chart and the metrics always agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from ..search.sensitivity import sensitivity_spread, varied_parameter
from ..search.space import point_key


@dataclass(frozen=True)
class ParameterEffect:
    name: str
    points: tuple[tuple[object, float], ...]  # (value of the parameter, objective), base included
    spread: float = 0.0


def _key(value: object) -> str:
    return repr(value)


def base_point(trials: list[FrozenTrial]) -> dict[str, object]:
    """Each parameter's most frequent value: in a one-at-a-time sweep, its base value (used when
    the plan's base is not known)."""
    counts: dict[str, Counter] = {}
    samples: dict[tuple[str, str], object] = {}
    for trial in trials:
        for name, value in trial.params.items():
            counts.setdefault(name, Counter())[_key(value)] += 1
            samples[(name, _key(value))] = value
    return {name: samples[(name, counter.most_common(1)[0][0])] for name, counter in counts.items()}


def parameter_effects(
    trials: list[FrozenTrial], base: dict[str, object] | None = None
) -> list[ParameterEffect]:
    """Effects of the completed single-objective trials, largest spread first. `base` is the
    plan's base point (default: each parameter's most frequent value)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if base is None:
        base = base_point(done)
    rows = [(dict(t.params), float(t.value)) for t in done]
    spread = sensitivity_spread(rows, base=base)
    base_rows = [value for point, value in rows if point_key(point) == point_key(base)]
    effects = []
    for name in spread:
        points = [(point[name], value) for point, value in rows if varied_parameter(base, point) == name]
        points += [(base[name], value) for value in base_rows]
        effects.append(
            ParameterEffect(name, tuple(sorted(points, key=lambda p: _sort_key(p[0]))), spread[name])
        )
    return sorted(effects, key=lambda effect: -effect.spread)


def _sort_key(value: object) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))
