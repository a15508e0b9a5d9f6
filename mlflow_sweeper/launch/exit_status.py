"""A local trial's exit status, kept beside its log, so that it outlives the agent.

The agent learns how a trial ended as the trial's parent. An agent killed outright loses that,
though its trial runs on (in a session of its own) and may end well or not, and the trial's
MLflow run cannot tell: MLflow ends a run its code started as FINISHED at exit, even after an
uncaught exception. So each local trial runs under a POSIX shell that waits for it and writes
`<run id> <status>` to `trial-N.exit` beside its log, where an agent taking over reads it. The
shell costs well under a millisecond per trial, and ends as the trial did: a death by a signal
is passed on as one (core dumps off: the trial's own was made already), so the agent sees the
status it saw before. The program is found here, as starting it directly would find it (never
a shell builtin of the same name), and one that cannot be run fails here, not as a trial. A
host without `/bin/sh` runs the trial directly, its status not kept.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SHELL = "/bin/sh"
# Signals that end a process by default: a status of 128 + one of these is a death by it,
# raised again by the shell. Not those a process ignores or stops on by default (CHLD, CONT,
# STOP, TSTP, TTIN, TTOU, URG, WINCH), which would leave the shell running.
FATAL_SIGNALS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31)
# $0: the exit file; "$@": the trial's command.
_SCRIPT = f""""$@"
code=$?
printf '%s %s\\n' "$MLFLOW_RUN_ID" "$code" > "$0"
case $code in {"|".join(str(128 + n) for n in FATAL_SIGNALS)}) ulimit -c 0; kill -$((code - 128)) $$ ;; esac
exit "$code"
"""
# What an executable file starts with when the kernel runs it itself: a script's `#!`, ELF,
# Mach-O. Anything else fails to start directly, where a shell would run it as a shell script.
_MAGIC = (b"#!", b"\x7fELF", b"\xfe\xed\xfa", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


@dataclass(frozen=True)
class ExitStatus:
    code: int  # as the agent would have seen it: -N for a death by signal N
    ended: float  # when the trial ended (seconds since the epoch)


def exit_file(log_path: Path) -> Path:
    return log_path.with_suffix(".exit")


def recording_exit(argv: list[str], log_path: Path, cwd: str, env: dict[str, str]) -> list[str]:
    """`argv` run so that its exit status is written to `exit_file(log_path)`. Raises OSError,
    as starting it directly would, for a program that cannot be run."""
    program = _runnable(argv[0], cwd, env)
    exit_path = exit_file(log_path)
    exit_path.unlink(missing_ok=True)  # an earlier attempt's, or a sweep's started over
    if not os.path.exists(SHELL):
        return argv
    return [SHELL, "-c", _SCRIPT, str(exit_path), program, *argv[1:]]


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
        code = int(fields[1])
    except ValueError:
        return None
    return ExitStatus(-(code - 128) if code - 128 in FATAL_SIGNALS else code, ended)


def _runnable(program: str, cwd: str, env: dict[str, str]) -> str:
    """The path of the program `program` names, found as the trial's own start would find it
    (in its working directory, on its PATH)."""
    if os.sep in program:
        path = os.path.join(cwd, program)
    else:
        search = os.pathsep.join(
            os.path.join(cwd, entry) for entry in env.get("PATH", os.defpath).split(os.pathsep)
        )
        path = shutil.which(program, path=search) or ""
        if not path:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError:
        return path  # executable but unreadable: the kernel may still run it
    if not head.startswith(_MAGIC):
        raise OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC), program)
    return path
