"""A local trial's exit status, kept beside its log, so that it outlives the agent.

The agent learns how a trial ended as the trial's parent. An agent killed outright loses that,
though its trial runs on (in a session of its own) and may end well or not, and the trial's
MLflow run cannot tell: MLflow ends a run its code started as FINISHED at exit, even after an
uncaught exception. So each local trial runs under a POSIX shell that waits for it and writes
`<run id> <status>` to `trial-N.exit` beside its log, where an agent taking over reads it. The
shell costs about a millisecond per trial, and ends as the trial did (a death by a signal is
passed on as one), so the agent sees the status it saw before.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SHELL = "/bin/sh"
# $0: the exit file; "$@": the trial's command. A status of 128 + N is a death by signal N,
# re-raised for the fatal signals a trial commonly dies of (never a stopping one).
_SCRIPT = """"$@"
code=$?
printf '%s %s\\n' "$MLFLOW_RUN_ID" "$code" > "$0"
case $code in 129|130|131|134|137|141|142|143) kill -$((code - 128)) $$ ;; esac
exit "$code"
"""


@dataclass(frozen=True)
class ExitStatus:
    code: int
    ended: float  # when the trial ended (seconds since the epoch)


def exit_file(log_path: Path) -> Path:
    return log_path.with_suffix(".exit")


def recording_exit(argv: list[str], log_path: Path, cwd: str, env: dict[str, str]) -> list[str]:
    """`argv` run so that its exit status is written to `exit_file(log_path)`. A program that
    cannot be run fails here, as starting it directly would, not later as a failed trial."""
    _check_runnable(argv[0], cwd, env)
    exit_path = exit_file(log_path)
    exit_path.unlink(missing_ok=True)  # an earlier attempt's, or a sweep's started over
    return [SHELL, "-c", _SCRIPT, str(exit_path), *argv]


def read_exit_status(log_path: Path, run_id: str) -> ExitStatus | None:
    """How the trial with this run ended, when its shell wrote it here; None otherwise (still
    running, run on another host, killed with its shell, or not a local trial)."""
    path = exit_file(log_path)
    try:
        text = path.read_text()
        ended = path.stat().st_mtime
    except OSError:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] != run_id or not text.endswith("\n"):
        return None
    try:
        return ExitStatus(int(fields[1]), ended)
    except ValueError:
        return None


def _check_runnable(program: str, cwd: str, env: dict[str, str]) -> None:
    if os.sep in program:
        path = os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
