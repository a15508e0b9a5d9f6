"""A range with whole-number bounds and no `type` is sampled as floats: say so at load.

`hidden: {low: 32, high: 256}` looks like an integer range but is a float one; the script then
gets `--hidden 249.37...` and refuses it at trial time, after a trial's worth of waiting.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole_bound_warnings(path: Path | str, parameters: Any) -> list[str]:
    """One warning per range whose bounds (and step) are whole numbers and whose type is not given."""
    if not isinstance(parameters, dict):
        return []
    warnings: list[str] = []
    for name, spec in parameters.items():
        if not isinstance(spec, dict) or "type" in spec or not {"low", "high"} <= set(spec):
            continue
        low, high = spec["low"], spec["high"]
        if _whole(low) and _whole(high) and (spec.get("step") is None or _whole(spec["step"])):
            warnings.append(
                f"{path}: parameters.{name}: low {low} and high {high} are whole numbers but the range "
                f"has no 'type', so it is sampled as floats (like {(low + high) / 2 + 0.37:g}); add "
                f"`type: int` to get integers, or write the bounds as {float(low)} and {float(high)} "
                "to keep floats"
            )
    return warnings


def warn_whole_bounds(path: Path | str, parameters: Any) -> None:
    for warning in whole_bound_warnings(path, parameters):
        log.warning("%s", warning)
