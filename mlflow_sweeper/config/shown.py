"""Values in config messages shown as the user wrote them, in YAML."""

from __future__ import annotations

from typing import Any

import yaml


def shown(value: Any) -> str:
    """A value as the user wrote it in YAML (`true`, `null`, `[a, b]`, `{k: v}`), not as Python
    shows it (`True`, `None`, a tuple); a string quoted, so that a blank or a number in quotes
    shows."""
    if isinstance(value, str):
        return repr(value)
    plain = list(value) if isinstance(value, tuple) else value
    try:
        written = yaml.safe_dump(plain, default_flow_style=True, width=1_000_000, allow_unicode=True)
    except yaml.YAMLError:
        return repr(value)
    return written.strip().removesuffix("...").strip()
