"""The search space: config `parameters` turned into grid axes and Optuna distributions.

Nothing here materialises the whole grid: a point is decoded from its index (mixed radix), and
random order over a finite space is a seeded bijection on indices, so a 100,000-point grid
costs the same per trial as a 10-point one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

Scalar = None | bool | int | float | str

RANGE_KEYS = {"low", "high", "step", "log", "type"}
MAPPING_KEYS = RANGE_KEYS | {"values"}


class SpaceError(ValueError):
    """A problem with one parameter; `key` is its dotted config path."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


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
    """One `parameters` entry: a list, a scalar (fixed value) or a mapping."""
    if isinstance(spec, list):
        return _categorical(key, spec)
    if _is_scalar(spec):
        return spec
    if not isinstance(spec, dict):
        raise SpaceError(key, f"expected a list, a scalar or a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - MAPPING_KEYS)
    if unknown:
        raise SpaceError(f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(MAPPING_KEYS))}")
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


@dataclass(frozen=True)
class SearchSpace:
    """Axes (searched) and fixed values (passed to every trial), in config order."""

    axes: dict[str, Axis]
    fixed: dict[str, Scalar]

    @classmethod
    def parse(cls, parameters: dict[str, Any]) -> SearchSpace:
        axes: dict[str, Axis] = {}
        fixed: dict[str, Scalar] = {}
        for name, spec in parameters.items():
            parsed = parse_axis(name, spec)
            if isinstance(parsed, Categorical | Range):
                axes[name] = parsed
            else:
                fixed[name] = parsed
        return cls(axes, fixed)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: axis.distribution() for name, axis in self.axes.items()}

    def grid_axes(self) -> dict[str, tuple[Scalar, ...]] | None:
        """Every axis as its list of values, or None when an axis is continuous."""
        values = {name: axis.grid_values() for name, axis in self.axes.items()}
        if any(v is None for v in values.values()):
            return None
        return values  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, stored with the sweep to detect a changed space."""
        return {
            "axes": {name: axis.describe() for name, axis in self.axes.items()},
            "fixed": dict(self.fixed),
        }


class Grid:
    """The grid's points by index: last axis fastest, as itertools.product orders them."""

    def __init__(self, axes: dict[str, tuple[Scalar, ...]]):
        self.names = list(axes)
        self.values = [axes[name] for name in self.names]
        self.size = math.prod(len(v) for v in self.values)

    def point(self, index: int) -> dict[str, Scalar]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        point: dict[str, Scalar] = {}
        for name, values in zip(reversed(self.names), reversed(self.values), strict=True):
            index, digit = divmod(index, len(values))
            point[name] = values[digit]
        return {name: point[name] for name in self.names}


class Permutation:
    """A seeded bijection on range(size): random order without repeats, O(1) memory.

    A balanced Feistel network over the next even power of two, with cycle walking to stay
    inside range(size).
    """

    ROUNDS = 4

    def __init__(self, size: int, seed: int | None):
        self.size = size
        bits = max(2, (size - 1).bit_length())
        bits += bits % 2
        self.half = bits // 2
        self.mask = (1 << self.half) - 1
        material = f"mlflow-sweeper:{seed}".encode()
        self.keys = [
            int.from_bytes(hashlib.sha256(material + bytes([r])).digest()[:8], "big")
            for r in range(self.ROUNDS)
        ]

    def _round(self, value: int, key: int) -> int:
        digest = hashlib.blake2b(value.to_bytes(8, "big"), key=key.to_bytes(8, "big"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") & self.mask

    def _encrypt(self, value: int) -> int:
        left, right = value >> self.half, value & self.mask
        for key in self.keys:
            left, right = right, left ^ self._round(right, key)
        return (left << self.half) | right

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        value = self._encrypt(index)
        while value >= self.size:
            value = self._encrypt(value)
        return value
