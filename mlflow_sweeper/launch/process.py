"""Local trial processes: start one in its own session, wait for it, kill its whole tree."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
from pathlib import Path

import psutil

from ..record import trial_environment
from ..resume import RESUME_ENV
from ..trial_log import log_header
from .base import TrialHandle, TrialRequest
from .exit_status import recording_exit
from .trial_output import TrialOutput, trial_output

CANCEL_GRACE_SECONDS = 5.0


class ProcessHandle(TrialHandle):
    def __init__(
        self, run_id: str, process: subprocess.Popen, output: TrialOutput, cleanup: Path | None = None
    ):
        self.run_id = run_id
        self.process = process
        self.pid = process.pid
        self.output = output
        self.cleanup = cleanup
        self.exit_signal = _exit_signal(process.pid)

    def poll(self) -> bool | None:
        code = self.process.poll()
        return None if code is None else code == 0

    def wait(self, timeout: float) -> bool | None:
        """True/False once the trial has exited, None after `timeout` seconds.

        Where Linux gives a pidfd, the exit wakes this wait at once; Popen.wait(timeout) polls
        with sleeps of up to 50 ms, which would be paid by every trial.
        """
        if self.exit_signal is not None and self.process.returncode is None:
            select.select([self.exit_signal], [], [], timeout)
            code = self.process.poll()
            return None if code is None else code == 0
        try:
            return self.process.wait(timeout=timeout) == 0
        except subprocess.TimeoutExpired:
            return None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def cancel(self) -> None:
        kill_tree(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=CANCEL_GRACE_SECONDS)

    def close(self) -> None:
        self.output.close(trial_ended=self.process.poll() is not None)
        if self.exit_signal is not None:
            os.close(self.exit_signal)
            self.exit_signal = None
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)


def _exit_signal(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def kill_tree(pid: int, grace: float = CANCEL_GRACE_SECONDS) -> None:
    """SIGTERM a process, its process group and every descendant; SIGKILL what is left after
    `grace` seconds. The trial leads its own session: its group is killed even when the process
    itself has gone (a wrapper dead of the SIGTERM its trial ignores, an earlier cancel)."""
    procs = _tree(pid)
    if not procs:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if alive:
        psutil.wait_procs(alive, timeout=1.0)  # gone before the caller goes on (a re-run next)


def _tree(pid: int) -> list[psutil.Process]:
    """The process `pid`, the members of the process group it leads, and all their descendants."""
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        found[pid] = psutil.Process(pid)
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid not in found and os.getpgid(proc.pid) == pid:
                found[proc.pid] = proc
    for proc in list(found.values()):
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
    return list(found.values())


def orphaned_trial(run_id: str | None) -> list[int]:
    """The process trees a dead agent's trial left running on this host (their roots' pids): its
    trials run in sessions of their own, so they outlive the agent. They are found by the run id
    in their environment (MLFLOW_RUN_ID, set for every local trial); `kill_tree` stops each."""
    if not run_id:
        return []
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MLFLOW_RUN_ID") == run_id:
                found[proc.pid] = proc
        except (psutil.Error, OSError):
            continue  # gone, a zombie, or another user's
    roots = []
    for pid, proc in found.items():
        with contextlib.suppress(psutil.Error):
            if proc.ppid() not in found:
                roots.append(pid)
    return roots


def popen(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    log_path: Path,
    request: TrialRequest | None = None,
    shown: list[str] | None = None,
) -> tuple[subprocess.Popen, TrialOutput]:
    """Start a trial in a new session (so its tree can be killed), output to its log file (through
    a relay masking secrets when the sweep holds any: `trial_output`), which starts with the
    command line and working directory (a failed trial's log explains itself),
    its exit status recorded beside it (`exit_status.py`: for an agent taking over).
    `request`: the descriptors it inherits (its device locks), its values to mask in the header;
    `shown`: `argv` as the sweep shows it, written in the header instead (nothing to mask)."""
    keep_fds = request.keep_fds if request is not None else ()
    hidden = request.hidden_values if request is not None else ()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = recording_exit(argv, log_path, cwd, env)  # raises, as Popen would, before the log opens
    # Readable by its owner only, from the start: until the trial ends and its log is scrubbed of
    # hidden values, it may hold them (and whatever secrets the trial itself prints).
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an earlier attempt's log, reopened, keeps its old mode otherwise
    log_file = os.fdopen(descriptor, "wb")
    header = log_header(shown, cwd) if shown is not None else log_header(argv, cwd, hidden)
    log_file.write(header.encode("utf-8", errors="replace"))
    log_file.flush()
    try:
        output = trial_output(log_file)
    except BaseException:
        log_file.close()
        raise
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output.for_trial,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=keep_fds,
        )
    except BaseException:
        output.close()
        raise
    output.trial_started()
    return process, output


def run_env(run_id: str, tracking_uri: str, experiment_id: str) -> dict[str, str]:
    """The environment MLflow Projects gives a run, so `mlflow.start_run()` resumes the child run."""
    env = trial_environment(dict(os.environ))
    # Never let a trial inherit the agent's own run (set when the agent runs under `mlflow run`).
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_PARENT_RUN_ID", RESUME_ENV):
        env.pop(name, None)
    env.update(
        MLFLOW_RUN_ID=run_id,
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_EXPERIMENT_ID=str(experiment_id),
    )
    return env
