"""The search space: config `parameters` turned into grid axes and Optuna distributions.

Nothing materialises the whole grid: `grid.py` decodes a point from its index, and gives random
order over a finite space as a seeded bijection on indices.

Conditional parameters (`when`) exist in a trial only when their condition holds. Conditions
reference list parameters or fixed values, so a conditional grid is a concatenation of
rectangular sub-grids, one per assignment of the referenced ("controlling") list parameters,
and is still decoded by index in memory proportional to the number of those assignments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ..errors import ConfigProblem
from .grid import ConditionalGrid, Grid, branches
from .values import Scalar, same_value

if TYPE_CHECKING:
    import optuna

RANGE_KEYS = {"low", "high", "step", "log", "type"}
CONDITION_KEY = "when"
MAX_CONDITION_BRANCHES = 100_000  # combinations of list parameters read to find optional ones
FIXED_KEY = "value"
MAPPING_KEYS = RANGE_KEYS | {"values", FIXED_KEY, CONDITION_KEY}


class SpaceError(ConfigProblem):
    """A problem with one parameter; `key` is its dotted config path under `parameters`."""


@dataclass(frozen=True)
class Categorical:
    values: tuple[Scalar, ...]

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(list(self.values))

    def grid_values(self) -> tuple[Scalar, ...]:
        return self.values

    def describe(self) -> Any:
        return {"values": list(self.values)}


@dataclass(frozen=True)
class Range:
    low: float | int
    high: float | int
    is_int: bool
    log: bool
    step: float | int | None

    def distribution(self) -> BaseDistribution:
        if self.is_int:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def grid_values(self) -> tuple[Scalar, ...] | None:
        """Every value of the range, or None when it is continuous."""
        if self.is_int:
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return None
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        decimals = _decimals(self.low, self.step)
        return tuple(round(self.low + k * self.step, decimals) for k in range(count))

    def step_count(self) -> int:
        """How many values an int or stepped range holds (without listing them)."""
        step = self.step if self.step is not None else 1
        return math.floor((self.high - self.low) / step + 1e-9) + 1

    def step_value(self, k: int) -> Scalar:
        """The k-th value of an int or stepped range (clamped to it), printed as grid_values does."""
        k = min(max(k, 0), self.step_count() - 1)
        if self.is_int:
            return int(self.low) + k * int(self.step or 1)
        step = self.step if self.step is not None else 1.0
        return round(self.low + k * step, _decimals(self.low, step))

    def describe(self) -> Any:
        return {
            "low": self.low,
            "high": self.high,
            "type": "int" if self.is_int else "float",
            "log": self.log,
            "step": self.step,
        }


Axis = Categorical | Range


def _decimals(*numbers: float) -> int:
    """Decimal places enough to print grid values like 0.1 + 2 * 0.2 as 0.5, not 0.5000000001."""
    places = 0
    for number in numbers:
        text = repr(float(number))
        if "e" in text:
            mantissa, exponent = text.split("e")
            frac = mantissa.split(".")[1] if "." in mantissa else ""
            places = max(places, len(frac.rstrip("0")) - int(exponent))
        elif "." in text:
            places = max(places, len(text.split(".")[1].rstrip("0")))
    return min(max(places, 0) + 2, 15)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_axis(key: str, spec: Any) -> Axis | Scalar:
    """One `parameters` entry: a list, a scalar (fixed value) or a mapping.

    A mapping's `when` is not part of the axis (SearchSpace.parse reads it); `{value: X}` is the
    mapping form of a fixed value, there so that a fixed value can carry a `when`.
    """
    if isinstance(spec, list):
        return _categorical(key, spec)
    if _is_scalar(spec):
        return spec
    if not isinstance(spec, dict):
        raise SpaceError(key, f"expected a list, a scalar or a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - MAPPING_KEYS, key=str)
    if unknown:
        raise SpaceError(f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(MAPPING_KEYS))}")
    spec = {k: v for k, v in spec.items() if k != CONDITION_KEY}
    if FIXED_KEY in spec:
        extra = sorted(set(spec) - {FIXED_KEY})
        if extra:
            raise SpaceError(f"{key}.{extra[0]}", f"cannot be combined with '{FIXED_KEY}'")
        if not _is_scalar(spec[FIXED_KEY]):
            raise SpaceError(
                f"{key}.{FIXED_KEY}", f"expected a scalar (str, number, bool, null), got {spec[FIXED_KEY]!r}"
            )
        return spec[FIXED_KEY]
    if "values" in spec:
        extra = sorted(set(spec) - {"values"})
        if extra:
            raise SpaceError(f"{key}.{extra[0]}", "cannot be combined with 'values'")
        if not isinstance(spec["values"], list):
            raise SpaceError(f"{key}.values", "expected a list of values")
        return _categorical(f"{key}.values", spec["values"])
    return _range(key, spec)


def _categorical(key: str, values: list[Any]) -> Categorical:
    if not values:
        raise SpaceError(key, "empty list: give at least one value")
    for value in values:
        if not _is_scalar(value):
            raise SpaceError(key, f"values must be scalars (str, number, bool, null), got {value!r}")
    if len({(type(v).__name__, v) for v in values}) != len(values):
        raise SpaceError(key, "a value is listed twice")
    return Categorical(tuple(values))


def _range(key: str, spec: dict[str, Any]) -> Range:
    for bound in ("low", "high"):
        if bound not in spec:
            raise SpaceError(f"{key}.{bound}", "missing (a range needs 'low' and 'high', or give 'values')")
        if not _is_number(spec[bound]):
            raise SpaceError(f"{key}.{bound}", f"expected a number, got {spec[bound]!r}")
        if not math.isfinite(spec[bound]):
            raise SpaceError(f"{key}.{bound}", f"expected a finite number, got {spec[bound]!r}")
    kind = spec.get("type", "float")
    if kind not in ("int", "float"):
        raise SpaceError(f"{key}.type", f"expected 'int' or 'float', got {kind!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{key}.log", f"expected true or false, got {log!r}")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    if low > high:
        raise SpaceError(f"{key}.low", f"low ({low}) is greater than high ({high})")
    if step is not None and (not _is_number(step) or step <= 0):
        raise SpaceError(f"{key}.step", f"expected a positive number, got {step!r}")
    if log and low <= 0:
        raise SpaceError(f"{key}.low", "a log-scaled range needs low > 0")
    if log and step is not None and not (kind == "int" and step == 1):
        raise SpaceError(f"{key}.step", "a log-scaled range cannot have a step")
    is_int = kind == "int"
    if is_int:
        for name, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and float(value) != int(value):
                raise SpaceError(f"{key}.{name}", f"an int range needs whole numbers, got {value!r}")
        low, high = int(low), int(high)
        step = int(step) if step is not None else None
    else:
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Range(low, high, is_int, log, step)


_ABSENT = object()


def _parse_conditions(
    name: str, raw: Any, axes: dict[str, Axis], fixed: dict[str, Scalar]
) -> dict[str, tuple[Scalar, ...]]:
    """`when: {other: value | [values]}` checked against what `other` can take."""
    key = f"{name}.{CONDITION_KEY}"
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(key, "expected a mapping {parameter: value or [values]}")
    conditions: dict[str, tuple[Scalar, ...]] = {}
    for ref, wanted in raw.items():
        ref_key = f"{key}.{ref}"
        if ref == name:
            raise SpaceError(ref_key, "a parameter cannot depend on itself")
        if ref in axes:
            axis = axes[ref]
            if not isinstance(axis, Categorical):
                raise SpaceError(
                    ref_key,
                    f"{ref!r} is a range; conditions may reference only list parameters or fixed values",
                )
            possible: tuple[Scalar, ...] = axis.values
        elif ref in fixed:
            possible = (fixed[ref],)
        else:
            raise SpaceError(ref_key, f"unknown parameter {ref!r}")
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values:
            raise SpaceError(ref_key, "empty list: give at least one value")
        allowed: list[Scalar] = []
        for value in values:
            match = next((v for v in possible if _is_scalar(value) and same_value(v, value)), _ABSENT)
            if match is _ABSENT:
                shown = ", ".join(repr(v) for v in possible)
                raise SpaceError(ref_key, f"{ref!r} never takes the value {value!r} (it takes {shown})")
            if not any(same_value(match, a) for a in allowed):
                allowed.append(match)
        conditions[ref] = tuple(allowed)
    return conditions


@dataclass(frozen=True)
class SearchSpace:
    """Axes (searched) and fixed values (passed to trials), in config order.

    `conditions[name]` maps each parameter that `name` depends on to the values that make
    `name` exist; a parameter without an entry always exists. `fixed` holds every fixed value,
    conditional or not: pass a trial `fixed_for(params)`, not `fixed`.
    """

    axes: dict[str, Axis]
    fixed: dict[str, Scalar]
    conditions: dict[str, dict[str, tuple[Scalar, ...]]] = field(default_factory=dict)
    names: tuple[str, ...] = ()

    @classmethod
    def parse(cls, parameters: dict[str, Any]) -> SearchSpace:
        axes: dict[str, Axis] = {}
        fixed: dict[str, Scalar] = {}
        raw_conditions: dict[str, Any] = {}
        for name, spec in parameters.items():
            parsed = parse_axis(name, spec)
            if isinstance(parsed, Categorical | Range):
                axes[name] = parsed
            else:
                fixed[name] = parsed
            if isinstance(spec, dict) and CONDITION_KEY in spec:
                raw_conditions[name] = spec[CONDITION_KEY]
        conditions = {name: _parse_conditions(name, raw, axes, fixed) for name, raw in raw_conditions.items()}
        space = cls(axes, fixed, conditions, tuple(parameters))
        space.order  # noqa: B018 - a cycle is a config error, raised now
        return space

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Every parameter, swept or fixed, in config order."""
        return self.names or (*self.axes, *self.fixed)

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Parameters in evaluation order: each after those its condition reads, else config order."""
        done: set[str] = set()
        order: list[str] = []
        pending = list(self.parameter_names)
        while pending:
            ready = next((n for n in pending if all(r in done for r in self.conditions.get(n, {}))), None)
            if ready is None:
                raise self._cycle_error(pending)
            pending.remove(ready)
            done.add(ready)
            order.append(ready)
        return tuple(order)

    def _cycle_error(self, pending: list[str]) -> SpaceError:
        path = [pending[0]]
        while True:
            ref = next(r for r in self.conditions[path[-1]] if r in pending)
            if ref in path:
                cycle = [*path[path.index(ref) :], ref]
                return SpaceError(
                    f"{cycle[0]}.{CONDITION_KEY}.{cycle[1]}", f"conditions form a cycle: {' -> '.join(cycle)}"
                )
            path.append(ref)

    def is_active(self, name: str, params: dict[str, Any]) -> bool:
        """Whether `name` exists given the values of the swept parameters it depends on."""
        for ref, allowed in self.conditions.get(name, {}).items():
            value = self._value(ref, params)
            if value is _ABSENT or not any(same_value(value, a) for a in allowed):
                return False
        return True

    def _value(self, name: str, params: dict[str, Any]) -> Any:
        if not self.is_active(name, params):
            return _ABSENT
        if name in self.fixed:
            return self.fixed[name]
        return params.get(name, _ABSENT)

    def active(self, params: dict[str, Any]) -> list[str]:
        """The parameters (swept and fixed) that exist given `params`, in evaluation order."""
        return [name for name in self.order if self.is_active(name, params)]

    def resolve(self, assignment: dict[str, Any]) -> dict[str, Scalar]:
        """The swept values of `assignment` that exist, in config order (drops inactive ones)."""
        return {n: assignment[n] for n in self.axes if n in assignment and self.is_active(n, assignment)}

    def fixed_for(self, params: dict[str, Any]) -> dict[str, Scalar]:
        """The fixed values a trial with swept values `params` gets: those whose condition holds."""
        return {name: value for name, value in self.fixed.items() if self.is_active(name, params)}

    def absent_from(self, params: dict[str, Any]) -> list[str]:
        """The parameters of the space that a point with these `params` does not have (a `when`
        that does not hold there): neither passed to its trial nor logged on its run."""
        return [name for name in self.parameter_names if name not in params]

    def conditional_names(self) -> list[str]:
        """Parameters absent from some valid trial (their entry point needs a default).

        A `when` that every combination of the list parameters it reads satisfies (it names
        all their values) leaves its parameter always present. Conditions read only list
        parameters and fixed values, so the combinations are enumerable; past
        `MAX_CONDITION_BRANCHES` every parameter with a `when` is counted, to stay cheap."""
        with_when = [name for name in self.parameter_names if name in self.conditions]
        if not with_when:
            return []
        referenced = {ref for refs in self.conditions.values() for ref in refs}
        controllers = [name for name in self.order if name in referenced and name in self.axes]
        values = {name: self.axes[name].values for name in controllers}  # type: ignore[attr-defined]
        if math.prod(len(v) for v in values.values()) > MAX_CONDITION_BRANCHES:
            return with_when
        absent: set[str] = set()
        for branch in branches(self, controllers, values):
            absent.update(name for name in with_when if not self.is_active(name, branch))
            if len(absent) == len(with_when):
                break
        return [name for name in with_when if name in absent]

    @cached_property
    def _distributions(self) -> dict[str, BaseDistribution]:
        return self.distributions()

    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: axis.distribution() for name, axis in self.axes.items()}

    def grid_axes(self) -> dict[str, tuple[Scalar, ...]] | None:
        """Every axis as its list of values, or None when an axis is continuous.

        Conditions are ignored here: use `grid()` for the points a sweep runs.
        """
        values = {name: axis.grid_values() for name, axis in self.axes.items()}
        if any(v is None for v in values.values()):
            return None
        return values  # type: ignore[return-value]

    def grid(self) -> Grid | ConditionalGrid | None:
        """The valid points by index, or None when an axis is continuous."""
        values = self.grid_axes()
        if values is None:
            return None
        if not self.conditions:
            return Grid(values)
        return ConditionalGrid(self, values)

    def grid_distributions(self, params: dict[str, Any] | None = None) -> dict[str, BaseDistribution]:
        """Distributions to record grid points under: each axis over all its values.

        With `params`, only the parameters in it (a trial's distributions must match its params).
        """
        values = self.grid_axes() or {}
        return {
            name: CategoricalDistribution(list(choices))
            for name, choices in values.items()
            if params is None or name in params
        }

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, stored with the sweep to detect a changed space."""
        described: dict[str, Any] = {
            "axes": {name: axis.describe() for name, axis in self.axes.items()},
            "fixed": dict(self.fixed),
        }
        if self.conditions:
            described["when"] = {
                name: {ref: list(values) for ref, values in refs.items()}
                for name, refs in self.conditions.items()
            }
        return described


# ---- define-by-run sampling ---------------------------------------------------------------------


def suggest_value(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Scalar:
    """Ask `trial` for one parameter under `dist` (a sampler sees it as it would in an objective)."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise SpaceError(name, f"unsupported distribution {dist!r}")


def suggest_point(trial: optuna.Trial, space: SearchSpace) -> dict[str, Scalar]:
    """Sample the swept parameters that exist, in dependency order; the rest are never asked.

    Define-by-run, like an objective with `if` branches, so every Optuna sampler sees the
    conditional space as it is. Returns the sampled values in config order.
    """
    distributions = space._distributions
    params: dict[str, Scalar] = {}
    for name in space.order:
        if name in space.axes and space.is_active(name, params):
            params[name] = suggest_value(trial, name, distributions[name])
    return {name: params[name] for name in space.axes if name in params}
