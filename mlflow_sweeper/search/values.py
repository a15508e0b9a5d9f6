"""A parameter's value as a config gives it, and when two values, or two points, are the same."""

from __future__ import annotations

from typing import Any

Scalar = None | bool | int | float | str


def same_value(a: Any, b: Any) -> bool:
    """Config values are equal: 1 == 1.0, but true is not 1 (YAML users mean different things)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def point_key(point: dict[str, Any]) -> tuple:
    """A hashable identity of a point that tells true from 1, as `_same` does."""
    return tuple((name, isinstance(value, bool), value) for name, value in point.items())
