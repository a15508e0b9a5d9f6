"""Where a local trial's output goes: straight into its log (at no cost), or, when the sweep
holds secrets, through a relay process that masks them as they pass (`log_relay`), so that the
log never holds them, even while the trial runs or once its agent has died."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ..log_relay import write_all
from ..secrets import SECRET_ENVIRONMENT, remembered

RELAY_DRAIN_SECONDS = 5.0  # a relay still open this long after its trial ended: a descendant holds its pipe
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder that holds mlflow_sweeper/


class TrialOutput:
    """The trial's stdout and stderr, and what ends them once the trial has ended."""

    def __init__(self, log_file: IO, relay: subprocess.Popen | None = None, trial_end: int | None = None):
        self.log_file = log_file
        self.relay = relay
        self._trial_end = trial_end

    @property
    def for_trial(self) -> IO | int:
        return self.log_file if self._trial_end is None else self._trial_end

    def trial_started(self) -> None:
        """The trial holds its end of the relay's pipe now: ours is closed, so that the relay sees
        the end of its output when the trial (and every process it left) has gone."""
        if self._trial_end is not None:
            os.close(self._trial_end)
            self._trial_end = None

    def close(self, trial_ended: bool = True) -> None:
        """Close the log, once the relay has written all the ended trial sent. Never waiting on a
        trial still running (an agent quitting at once), nor more than RELAY_DRAIN_SECONDS on
        processes the trial left holding its output: the relay, a process of its own, goes on
        masking what they write, and ends with them."""
        self.trial_started()
        if self.relay is not None and trial_ended:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.relay.wait(timeout=RELAY_DRAIN_SECONDS)
        self.log_file.close()


def trial_output(log_file: IO) -> TrialOutput:
    """The log itself when nothing is secret; else a relay started on it, told what to mask. Its
    own errors land in the log too (a trial whose relay failed would die of SIGPIPE unexplained)."""
    masked = remembered()
    if not masked:
        return TrialOutput(log_file)
    read_end, write_end = os.pipe()
    try:
        relay = subprocess.Popen(
            [sys.executable, "-m", "mlflow_sweeper.log_relay"],
            stdin=read_end,
            stdout=log_file,
            stderr=log_file,
            cwd=_PACKAGE_PARENT,  # `-m` looks here first: never at a project's own `json.py`
            env=_relay_env(),
            start_new_session=True,  # a Ctrl-C of the agent's terminal ends the trial first
            close_fds=True,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    try:
        write_all(write_end, (json.dumps(masked) + "\n").encode("utf-8"))
    except BaseException:
        os.close(write_end)
        relay.kill()
        relay.wait(timeout=RELAY_DRAIN_SECONDS)
        raise
    return TrialOutput(log_file, relay, write_end)


def relay_finished(log_path: Path, timeout: float = RELAY_DRAIN_SECONDS) -> bool:
    """Whether the relay writing `log_path` (if any) has ended, waiting up to `timeout`: for an
    agent taking over a trial whose agent died, before it reads, scrubs or uploads the log (the
    relay holds a lock on it while it writes)."""
    try:
        descriptor = os.open(log_path, os.O_RDONLY)
    except OSError:
        return True
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
    finally:
        os.close(descriptor)


def _relay_env() -> dict[str, str]:
    """The agent's environment without its credentials (the relay is told its values) and
    without MLflow's run variables (its process is no trial of any run)."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MLFLOW_") and name not in SECRET_ENVIRONMENT
    }
