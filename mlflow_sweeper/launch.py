"""Launching one trial and holding a handle to it (wait, poll, cancel), like MLflow's SubmittedRun.

* `command` trials: argv without a shell, `name=value` tokens, in the config's directory.
* `entry_point` trials on the local backend: MLflow Projects computes the entry point's command,
  its quoted parameters and its environment (virtualenv, uv, conda); we start that command
  ourselves in a new session, so a trial costs what the bare command costs (no second
  `mlflow run` process) and its whole process tree can be cancelled.
* Other backends (kubernetes, databricks, plugins): `mlflow.projects.run(synchronous=False)`
  and the SubmittedRun it returns.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO

import psutil

from . import compat
from .config import SweepConfig

CANCEL_GRACE_SECONDS = 5.0


class TrialHandle(ABC):
    """A launched trial: poll it, wait for it, cancel it."""

    run_id: str
    pid: int | None = None  # the local process tree's root, when there is one

    @abstractmethod
    def poll(self) -> bool | None:
        """None while running, else whether it succeeded."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the trial and everything it started."""

    def wait(self, timeout: float) -> bool | None:
        """Wait up to `timeout` seconds; None while running, else whether it succeeded."""
        time.sleep(timeout)
        return self.poll()

    def close(self) -> None:
        """Release what the launch held (log files, temp dirs)."""


class ProcessHandle(TrialHandle):
    def __init__(self, run_id: str, process: subprocess.Popen, log_file: IO, cleanup: Path | None = None):
        self.run_id = run_id
        self.process = process
        self.pid = process.pid
        self.log_file = log_file
        self.cleanup = cleanup

    def poll(self) -> bool | None:
        code = self.process.poll()
        return None if code is None else code == 0

    def wait(self, timeout: float) -> bool | None:
        try:
            return self.process.wait(timeout=timeout) == 0  # reaps within a millisecond of the exit
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
        self.log_file.close()
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)


def kill_tree(pid: int, grace: float = CANCEL_GRACE_SECONDS) -> None:
    """SIGTERM a process, its process group and every descendant; SIGKILL what is left."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)  # the trial leads its own session
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _popen(argv: list[str], cwd: str, env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, IO]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by the handle
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    return process, log_file


def run_env(run_id: str, tracking_uri: str, experiment_id: str) -> dict[str, str]:
    """The environment MLflow Projects gives a run, so `mlflow.start_run()` resumes the child run."""
    env = dict(os.environ)
    # Never let a trial inherit the agent's own run (set when the agent runs under `mlflow run`).
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_PARENT_RUN_ID"):
        env.pop(name, None)
    env.update(
        MLFLOW_RUN_ID=run_id,
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_EXPERIMENT_ID=str(experiment_id),
    )
    return env


class Launcher(ABC):
    """Starts trials of one sweep. `creates_run` tells whether the caller creates the child run."""

    creates_run = True

    def __init__(self, config: SweepConfig, tracking_uri: str, log_dir: Path):
        self.config = config
        self.tracking_uri = tracking_uri
        self.log_dir = log_dir

    def prepare(self) -> None:
        """Once per sweep, before the first trial (fetch a project, check it)."""

    def run_tags(self) -> dict[str, str]:
        """Tags MLflow Projects would put on the run it creates for this launch."""
        return {}

    @abstractmethod
    def launch(self, run_id: str | None, experiment_id: str, params: dict, log_name: str) -> TrialHandle: ...


class CommandLauncher(Launcher):
    def launch(self, run_id, experiment_id, params, log_name):
        argv = shlex.split(self.config.command or "")
        argv += [f"{name}={_text(value)}" for name, value in params.items()]
        env = run_env(run_id, self.tracking_uri, experiment_id)
        process, log_file = _popen(argv, str(self.config.base_dir), env, self.log_dir / log_name)
        return ProcessHandle(run_id, process, log_file)


class LocalProjectLauncher(Launcher):
    """An MLflow project entry point, command and environment computed by MLflow Projects."""

    def __init__(self, config, tracking_uri, log_dir):
        super().__init__(config, tracking_uri, log_dir)
        self.work_dir: str | None = None
        self.project = None
        self.env_prefix: list[str] = []
        self._lock = threading.Lock()

    def prepare(self) -> None:
        self.work_dir = compat.fetch_project(self.config.project, self.config.entry_point)
        self.project = compat.load_project(self.work_dir)
        self.project.get_entry_point(self.config.entry_point)  # raises for an unknown entry point
        if self.project.docker_env:
            raise ValueError("docker_env projects are not supported on the local backend yet")
        self.env_prefix = self._environment_prefix()

    def run_tags(self) -> dict[str, str]:
        from mlflow.entities import SourceType
        from mlflow.utils import mlflow_tags as tags

        result = {
            tags.MLFLOW_SOURCE_NAME: self.config.project,
            tags.MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.PROJECT),
            tags.MLFLOW_PROJECT_ENTRY_POINT: self.config.entry_point,
            tags.MLFLOW_PROJECT_BACKEND: "local",
            tags.MLFLOW_PROJECT_ENV: self.config.env_manager,
        }
        commit = compat.git_commit(self.work_dir)
        if commit:
            result[tags.MLFLOW_GIT_COMMIT] = commit
        return result

    def _environment_prefix(self) -> list[str]:
        """The activation command MLflow's local backend would put before the entry point."""
        from mlflow.utils import env_manager as em

        manager = self.config.env_manager
        if manager == em.LOCAL:
            return []
        if manager in (em.VIRTUALENV, em.UV):
            return [compat.virtualenv_activate_command(self.project, self.work_dir, manager)]
        return compat.conda_activate_command(self.project.env_config_path)

    def launch(self, run_id, experiment_id, params, log_name):
        storage_dir = Path(tempfile.mkdtemp(prefix="mlflow-sweeper-"))
        entry = self.project.get_entry_point(self.config.entry_point)
        command = entry.compute_command({k: _text(v) for k, v in params.items()}, str(storage_dir))
        command = " && ".join([*self.env_prefix, command])
        env = run_env(run_id, self.tracking_uri, experiment_id)
        process, log_file = _popen(["bash", "-c", command], self.work_dir, env, self.log_dir / log_name)
        return ProcessHandle(run_id, process, log_file, cleanup=storage_dir)


class SubmittedRunHandle(TrialHandle):
    def __init__(self, submitted):
        self.submitted = submitted
        self.run_id = submitted.run_id

    def poll(self) -> bool | None:
        from mlflow.entities import RunStatus

        status = self.submitted.get_status()
        if status in (RunStatus.to_string(RunStatus.RUNNING), RunStatus.to_string(RunStatus.SCHEDULED)):
            return None
        return status == RunStatus.to_string(RunStatus.FINISHED)

    def cancel(self) -> None:
        self.submitted.cancel()


class BackendLauncher(Launcher):
    """Remote and plugin backends create their own run; the caller nests it afterwards."""

    creates_run = False

    def launch(self, run_id, experiment_id, params, log_name):
        import mlflow.projects

        submitted = mlflow.projects.run(
            uri=self.config.project,
            entry_point=self.config.entry_point,
            parameters={k: _text(v) for k, v in params.items()},
            experiment_id=experiment_id,
            backend=self.config.backend,
            backend_config=self.config.backend_config,
            env_manager=self.config.env_manager,
            synchronous=False,
        )
        return SubmittedRunHandle(submitted)


def _text(value) -> str:
    """Parameter values as the trial sees them: YAML's true/false/null spelled as Python would."""
    return str(value)


def make_launcher(config: SweepConfig, tracking_uri: str, log_dir: Path) -> Launcher:
    if config.command is not None:
        return CommandLauncher(config, tracking_uri, log_dir)
    if config.backend == "local":
        return LocalProjectLauncher(config, tracking_uri, log_dir)
    return BackendLauncher(config, tracking_uri, log_dir)
