"""One-at-a-time sensitivity: a base point, then each swept parameter moved alone.

The plan is a fixed list of points, so the sweep's budget is its length and slot n runs
point n, like a grid. A parameter that does not exist at the base point (its `when` does not
hold there) is not swept: set `base` so that its condition holds to sweep it. Moving a
controlling parameter makes its dependants appear (at their base value) or disappear.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from .space import Axis, Categorical, Range, SearchSpace, SpaceError
from .values import Scalar, point_key, same_value

DEFAULT_POINTS = 5
REPORT_SECTION = "sensitivity"  # the key of the report's chart of the effects


def parse_sensitivity(space: SearchSpace, base_raw: Any, points_raw: Any) -> tuple[dict[str, Scalar], int]:
    """The config's `base` and `points`, checked against the space.

    Errors name top-level keys (`base.<param>`, `points`), not keys under `parameters`.
    """
    points = DEFAULT_POINTS if points_raw is None else points_raw
    if not isinstance(points, int) or isinstance(points, bool):
        raise SpaceError("points", f"expected a whole number, got {points!r}")
    if points < 2:
        raise SpaceError("points", f"expected at least 2 (both ends of each range), got {points}")
    if base_raw is None:
        return {}, points
    if not isinstance(base_raw, dict):
        raise SpaceError("base", "expected a mapping {parameter: value}")
    base: dict[str, Scalar] = {}
    for name, value in base_raw.items():
        key = f"base.{name}"
        if name in space.fixed:
            raise SpaceError(key, f"{name!r} is fixed; a base value is for a swept parameter")
        if name not in space.axes:
            raise SpaceError(key, f"unknown parameter {name!r}")
        base[name] = _base_value(key, space.axes[name], value)
    return base, points


def _base_value(key: str, axis: Axis, value: Any) -> Scalar:
    if isinstance(axis, Categorical):
        for choice in axis.values:
            if same_value(choice, value):
                return choice
        shown = ", ".join(repr(v) for v in axis.values)
        raise SpaceError(key, f"{value!r} is not one of the parameter's values ({shown})")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SpaceError(key, f"expected a number, got {value!r}")
    if not axis.low <= value <= axis.high:
        raise SpaceError(key, f"{value!r} is outside the range [{axis.low}, {axis.high}]")
    if axis.is_int and float(value) != int(value):
        raise SpaceError(key, f"an int range needs a whole number, got {value!r}")
    if axis.step is not None and not (axis.log and axis.is_int):
        steps = (value - axis.low) / axis.step
        if abs(steps - round(steps)) > 1e-9:
            raise SpaceError(key, f"{value!r} is not on the range's steps ({axis.low} + k * {axis.step})")
        return axis.step_value(round(steps))
    return int(value) if axis.is_int else float(value)


def default_base(space: SearchSpace) -> dict[str, Scalar]:
    """Every swept parameter's default base: its first listed value, or its range's midpoint."""
    return {
        name: _midpoint(axis) if isinstance(axis, Range) else axis.values[0]
        for name, axis in space.axes.items()
    }


def _midpoint(axis: Range) -> Scalar:
    """The middle of a range: geometric when log-scaled, rounded to an int or onto the steps."""
    middle = math.sqrt(axis.low * axis.high) if axis.log else (axis.low + axis.high) / 2
    if axis.log and axis.is_int:
        return min(max(math.floor(middle + 0.5), int(axis.low)), int(axis.high))
    if axis.is_int or axis.step is not None:
        return axis.step_value(math.floor((middle - axis.low) / (axis.step or 1) + 0.5))
    return middle


def sweep_values(axis: Axis, points: int) -> tuple[Scalar, ...]:
    """The values one parameter takes: a list's values; `points` evenly spaced over a range.

    Both ends included; log-spaced for a log range; an int or stepped range's values are
    rounded onto its steps and deduplicated.
    """
    if isinstance(axis, Categorical):
        return axis.values
    fractions = [j / (points - 1) for j in range(points)]
    if axis.log:
        values: list[Scalar] = [axis.low * (axis.high / axis.low) ** f for f in fractions]
        values[0], values[-1] = axis.low, axis.high
        if axis.is_int:
            values = [min(max(math.floor(v + 0.5), int(axis.low)), int(axis.high)) for v in values]  # type: ignore[arg-type]
    elif axis.is_int or axis.step is not None:
        last = axis.step_count() - 1
        values = [axis.step_value(math.floor(f * last + 0.5)) for f in fractions]
    else:
        values = [axis.low + (axis.high - axis.low) * f for f in fractions]
        values[0], values[-1] = axis.low, axis.high
    unique: list[Scalar] = []
    for value in values:
        if not any(same_value(value, u) for u in unique):
            unique.append(value)
    return tuple(unique)


def sensitivity_plan(
    space: SearchSpace, base: dict[str, Scalar] | None = None, points: int = DEFAULT_POINTS
) -> list[dict[str, Scalar]]:
    """The base point, then each swept parameter (config order) at each of its other values.

    Points hold the swept parameters that exist (pass fixed values with `space.fixed_for`).
    The sweep's budget is `len(plan)`: 1 + sum over swept parameters of (values - 1).
    """
    full = {**default_base(space), **(base or {})}
    base_point = space.resolve(full)
    plan = [base_point]
    seen = {point_key(base_point)}
    for name, axis in space.axes.items():
        if name not in base_point:
            continue
        for value in sweep_values(axis, points):
            if _close(value, full[name]):
                continue
            point = space.resolve({**full, name: value})
            key = point_key(point)
            if key not in seen:
                seen.add(key)
                plan.append(point)
    return plan


def unswept_at_base(space: SearchSpace, base: dict[str, Scalar] | None = None) -> list[str]:
    """The swept parameters that do not exist at the base point, so the plan never moves them."""
    base_point = space.resolve({**default_base(space), **(base or {})})
    return [name for name in space.axes if name not in base_point]


def _close(a: Any, b: Any) -> bool:
    """The same value, up to float rounding (a log-spaced 10**-2 is not always exactly 0.01)."""
    if isinstance(a, float) and isinstance(b, int | float) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return same_value(a, b)


def varied_parameter(base: dict[str, Any], point: dict[str, Any]) -> str | None:
    """The one parameter `point` moved away from `base` (None for the base or a non-plan point).

    Parameters present in only one of them (dependants of a moved controller) do not count.
    """
    moved = [name for name in point if name in base and not same_value(point[name], base[name])]
    return moved[0] if len(moved) == 1 else None


def sensitivity_spread(
    plan_rows: list[tuple[dict[str, Any], float]], base: dict[str, Any] | None = None
) -> dict[str, float]:
    """Per swept parameter, max - min of the objective over its trials and the base trial.

    `plan_rows` are (point, objective) of finished trials; `base` is the plan's base point
    (default: the first row's point, as in plan order). Rows without a finite value are ignored;
    a parameter with no finished trial of its own is absent.
    """
    rows = [(point, value) for point, value in plan_rows if value is not None and math.isfinite(value)]
    if base is None:
        if not plan_rows:
            return {}
        base = plan_rows[0][0]
    base_key = point_key(base)
    base_values = [value for point, value in rows if point_key(point) == base_key]
    varied: dict[str, list[float]] = {}
    for point, value in rows:
        name = varied_parameter(base, point)
        if name is not None:
            varied.setdefault(name, []).append(value)
    return {name: max(values + base_values) - min(values + base_values) for name, values in varied.items()}


# ---- read back from the trials: the report's chart (the same spread as the parent's metrics) ----


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
