"""Numbers as console lines show them: 4 significant digits, so a TPE line stays one line.

Only what a person reads goes through here; MLflow params, Optuna and `trials.csv` keep full values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DIGITS = 4


def shown_value(value: Any) -> str:
    """0.0002703522821774034 -> 0.0002704; ints, strings and booleans as they are."""
    if isinstance(value, float):
        return f"{value + 0.0:.{DIGITS}g}"  # + 0.0: -0.0 shows as 0
    return str(value)


def shown_params(params: Mapping[str, Any]) -> str:
    """`lr=0.0002704, hidden=64, act=relu`."""
    return ", ".join(f"{name}={shown_value(value)}" for name, value in params.items())
