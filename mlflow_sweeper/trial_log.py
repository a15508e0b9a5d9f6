"""A trial's log file: a header saying what ran and where, and its tail for the console.

A failed trial is diagnosed from its log; the header makes the log self-explaining (the exact
command line and working directory), and the tail brings the cause to the console, so a user
does not have to open a file per failed point.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

from .secrets import MASK, redact, redact_bytes

TAIL_LINES = 20
_CHUNK = 8192


def log_header(argv: Sequence[str], cwd: str | os.PathLike[str], hidden: Collection[str] = ()) -> str:
    """The first lines of a trial log: the command line (quoted as a shell would need it, though
    none runs it) and the working directory. `hidden`: the trial's parameter values from `${VAR}`,
    masked where they are whole words (`7`, `seed=7`; in a `bash -c` line too), however short."""
    shown = [_masked_words(arg, hidden) for arg in argv] if hidden else list(argv)
    return redact(f"{_COMMAND}{shlex.join(shown)}\n{_DIRECTORY}{os.fspath(cwd)}\n")


_COMMAND, _DIRECTORY = "# command: ", "# working directory: "


def _masked_words(arg: str, hidden: Collection[str]) -> str:
    """`arg` with each hidden value masked where it is a whole word, or follows a `=`."""
    for value in sorted(hidden, key=len, reverse=True):  # longest first: no partial leftovers
        arg = re.sub(rf"(?<![^\s=]){re.escape(value)}(?!\S)", MASK, arg)
    return arg


def scrub(path: str | os.PathLike[str]) -> None:
    """Once the trial has ended, its log with every secret it printed replaced by `***` (a value
    from `${VAR}`, a URL password, an MLflow link with credentials), before anything reads it:
    the console's tail, the triage, the copy attached to its run. A sweep with secrets relays the
    output masked already (`log_relay`); this catches what was remembered only since. The file
    is read once, and read again to be rewritten only when something is found."""
    if not any(redact_bytes(line) != line for line in _lines(path)):
        return
    directory = os.path.dirname(os.fspath(path)) or "."
    with tempfile.NamedTemporaryFile("wb", dir=directory, delete=False, suffix=".scrub") as target:
        for line in _lines(path):
            target.write(redact_bytes(line))
    os.replace(target.name, path)


def _lines(path: str | os.PathLike[str]):
    try:
        with open(path, "rb") as source:
            yield from source
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return


def log_tail(path: str | os.PathLike[str], lines: int = TAIL_LINES, output_only: bool = False) -> str:
    """The last `lines` lines of a log (at most), read from the end: a trial may log gigabytes.
    `output_only`: the trial's own lines, without the header the sweep wrote (its command line
    holds the parameters and paths, which say nothing about how the trial ended).

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
    if output_only and position == 0:
        text = _without_header(text)
    shown = [_as_a_terminal_leaves_it(line) for line in text.split("\n")]
    if shown and shown[-1] == "":  # the log's last newline ends a line, it starts none
        shown.pop()
    return "\n".join(shown[-lines:])


def _without_header(text: str) -> str:
    """A whole log without the lines `log_header` wrote first (a quoted argument may span lines)."""
    if not text.startswith(_COMMAND):
        return text
    end = text.find("\n" + _DIRECTORY)
    if end < 0:
        return text
    rest = text.find("\n", end + 1)
    return "" if rest < 0 else text[rest + 1 :]


def _as_a_terminal_leaves_it(line: str) -> str:
    """A progress bar redraws its line after each `\\r`: what stays is what follows the last one."""
    return line.rstrip("\r").rsplit("\r", 1)[-1]


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")  # colours, cursor moves
LONGEST_SHOWN = 300  # characters of one log line on the console


def indented_tail(path: str | os.PathLike[str], lines: int = TAIL_LINES, prefix: str = "  | ") -> str:
    """The tail as the console shows it under a failure message ("" when the log is empty): with
    no terminal escapes of the trial's, a very long line cut short (the log keeps it whole)."""
    tail = log_tail(Path(path), lines)
    return "\n".join(prefix + _shortened(_ESCAPES.sub("", line)) for line in tail.split("\n") if tail)


def _shortened(line: str) -> str:
    if len(line) <= LONGEST_SHOWN:
        return line
    return f"{line[:LONGEST_SHOWN]}... ({len(line) - LONGEST_SHOWN} more characters in the log)"
