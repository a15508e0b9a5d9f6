"""A trial's log file: a header saying what ran and where, and its tail for the console.

A failed trial is diagnosed from its log; the header makes the log self-explaining (the exact
command line and working directory), and the tail brings the cause to the console, so a user
does not have to open a file per failed point.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from .secrets import redact

TAIL_LINES = 20
_CHUNK = 8192


def log_header(argv: Sequence[str], cwd: str | os.PathLike[str]) -> str:
    """The first lines of a trial log: the command line (quoted as a shell would need it, though
    none runs it) and the working directory."""
    return redact(f"# command: {shlex.join(list(argv))}\n# working directory: {os.fspath(cwd)}\n")


def log_tail(path: str | os.PathLike[str], lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of a log (at most), read from the end: a trial may log gigabytes.

    Returns "" for a missing or empty log. Undecodable bytes are replaced, never raised."""
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            data = b""
            position = end
            # One more newline than lines wanted, unless the start of the file is reached.
            while position > 0 and data.count(b"\n") <= lines:
                step = min(_CHUNK, position)
                position -= step
                fh.seek(position)
                data = fh.read(step) + data
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return ""
    text = data.decode("utf-8", errors="replace")
    kept = text.splitlines()[-lines:]
    return "\n".join(kept)


def indented_tail(path: str | os.PathLike[str], lines: int = TAIL_LINES, prefix: str = "  | ") -> str:
    """The tail as the console shows it under a failure message ("" when the log is empty)."""
    tail = log_tail(Path(path), lines)
    return "\n".join(prefix + line for line in tail.splitlines())
