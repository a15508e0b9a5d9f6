"""Checking a config value against the type a library function declares for it.

Pruner and sampler options are keyword arguments of Optuna's classes: a value of the wrong type
(`multivariate: "false"`, `n_startup_trials: 2.5`) must be refused with the config, not passed on
for Optuna to misread ("false" is true) or refuse late.
"""

from __future__ import annotations

import builtins
import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Any

_NAMES = {
    type(None): "null",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
}


def declared_types(function: Callable) -> dict[str, Any]:
    """The declared type of each parameter of `function` that can be resolved on its own
    (`bool`, `int | None`, ...). A parameter whose annotation names the library's own types is
    left out: the function itself decides on its value."""
    found = {}
    for name, parameter in inspect.signature(function).parameters.items():
        annotation = parameter.annotation
        if annotation is inspect.Parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, {"__builtins__": builtins}, {})  # noqa: S307 - a library's own annotation
            except Exception:  # noqa: BLE001 - names a type this check does not know
                continue
        found[name] = annotation
    return found


def type_problem(value: Any, hint: Any) -> str | None:
    """What `value` should have been to fit the annotation `hint`, or None when it fits (or when
    `hint` holds a type this check does not know: the library decides)."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) else ()
    alternatives = args or (hint,)
    for alt in alternatives:
        if alt is type(None) and value is None:
            return None
        if alt is bool and isinstance(value, bool):
            return None
        if alt is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if alt is float and isinstance(value, int | float) and not isinstance(value, bool):
            return None if not math.isnan(value) else "a number (not NaN)"
        if alt is str and isinstance(value, str):
            return None
        if alt not in _NAMES:
            return None
    return " or ".join(_NAMES[alt] for alt in alternatives)
