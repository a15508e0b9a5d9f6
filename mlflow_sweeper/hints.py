"""One way to suggest a near name for a mistyped one ("did you mean ...?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def near_name(name: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The known name closest to `name`, or None when none is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """' (did you mean 'x'?)' for the nearest known name, or '' when none is close."""
    near = near_name(name, known, cutoff)
    return f" (did you mean '{near}'?)" if near else ""
