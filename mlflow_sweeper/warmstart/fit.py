"""Does an earlier result fit this sweep's space? Its MLflow params (strings) read as the space's
values: each swept parameter that exists present and inside its range or list, each fixed one
equal, conditions respected. Parameters the space does not have are ignored."""

from __future__ import annotations

import math
from typing import Any

from ..search.space import Categorical, Range, SearchSpace
from ..search.values import Scalar, same_value

_NO = object()


def fitting_point(
    space: SearchSpace, params: dict[str, Any], on_grid: bool, inactive_logged: bool = True
) -> dict[str, Scalar] | None:
    """The swept values of a result, typed as the space's, or None when it does not fit.

    `params` are the values as logged (strings from MLflow, or typed); `on_grid`: the sweep records
    points on its grid, so a range's value must be one of the grid's values. `inactive_logged`: a
    value logged for a parameter whose condition is off is left aside (MLflow Projects logs every
    parameter of an entry point, its default too); else such a result does not fit."""
    point: dict[str, Scalar] = {}
    for name in space.order:
        if not space.is_active(name, point):
            if name in params and not inactive_logged:
                return None
            continue
        if name not in params:
            return None
        if name in space.fixed:
            if not _equal(space.fixed[name], params[name]):
                return None
            continue
        value = _read(space.axes[name], params[name], on_grid)
        if value is _NO:
            return None
        point[name] = value  # type: ignore[assignment]
    return {name: point[name] for name in space.axes if name in point}


def _equal(expected: Scalar, given: Any) -> bool:
    if not isinstance(given, str) or isinstance(expected, str):
        return same_value(expected, given) or str(expected) == str(given)
    if isinstance(expected, bool):
        return given.lower() == str(expected).lower()
    try:
        return _close(float(given), float(expected))
    except ValueError:
        return False


def _close(a: float, b: float) -> bool:
    """Equal but for float noise: 0.1 * 3 logged as 0.30000000000000004 is 0.3."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _read(axis: Categorical | Range, given: Any, on_grid: bool) -> Any:
    if isinstance(axis, Categorical):
        return next((v for v in axis.values if _equal(v, given)), _NO)
    try:
        number = float(given)
    except (TypeError, ValueError):
        return _NO
    if not math.isfinite(number):
        return _NO
    if not axis.low <= number <= axis.high:  # a bound but for float noise is the bound
        nearest = axis.low if number < axis.low else axis.high
        if not _close(number, nearest):
            return _NO
        number = nearest
    if axis.is_int:
        return int(number) if number == int(number) and _on_step(axis, number) else _NO
    if axis.step is not None:  # a value of its step's lattice, as the range gives it
        k = round((number - axis.low) / axis.step)
        value = axis.step_value(k)
        return value if _close(value, number) else _NO
    grid = axis.grid_values() if on_grid else None
    if grid is not None:
        return next((v for v in grid if _close(v, number)), _NO)
    return number


def _on_step(axis: Range, number: float) -> bool:
    step = axis.step or 1
    return (number - axis.low) % step == 0
