"""The CLI in a process forked from one that has already imported what it needs.

An agent's own process spends some 2.5 s of CPU importing MLflow, Optuna, SQLAlchemy's store,
scikit-learn (Optuna's importance evaluator) and the charting libraries before and at its close;
the suite starts over a hundred of them, on two cores. Python's fork server (multiprocessing's
`forkserver`) imports them once per test process and forks each CLI run from there: the run is
still a process of its own, with its own arguments, working directory, environment, standard
streams and exit code, talking to the real stores and starting real trial processes. `ForkedCli`
is such a run started (what the tests use of a Popen), `run` one run to its end.

A run whose environment changes what Python itself imports (PYTHONPATH and the like) cannot be
forked from an interpreter that has already started: `run_cli` starts those afresh.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import forkserver
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
MAIN = str(Path(_HERE).parent / "mlflow_sweeper" / "__main__.py")
# Settings Python reads when it starts, not later: a run that changes them needs a fresh one.
_SERVER = "_SWEEPER_TESTS_FORK_SERVER"
_READ_AT_START = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSAFEPATH",
    "PYTHONNOUSERSITE",
    "PYTHONWARNINGS",
    "PYTHONHASHSEED",
    "PYTHONSTARTUP",
    "PYTHONPLATLIBDIR",
    "PYTHONUSERBASE",
)


def _import_what_a_run_imports() -> None:
    """What every agent imports at its start and at its close (the report), in the same order
    the CLI does: MLflow before our logging, the report's charts on Agg as the report sets."""
    import matplotlib
    import mlflow  # noqa: F401
    import optuna.importance  # noqa: F401 - scikit-learn
    import optuna.visualization  # noqa: F401 - plotly
    from mlflow.store.tracking import sqlalchemy_store  # noqa: F401

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import optuna.visualization.matplotlib  # noqa: F401

    import mlflow_sweeper.cli  # noqa: F401
    import mlflow_sweeper.report.build  # noqa: F401

    sys.stdout.flush()
    sys.stderr.flush()


if os.environ.get(_SERVER) and multiprocessing.parent_process() is None:  # the fork server
    _import_what_a_run_imports()


def forkable(env: dict) -> bool:
    """Whether a run with this environment behaves the same forked as started afresh."""
    return all(env.get(name) == os.environ.get(name) for name in _READ_AT_START)


_STARTED = threading.Lock()
_started: list[bool] = []


def _context():
    """The fork server, started once per test process with this module (found through
    PYTHONPATH, which only the server gets) imported ahead."""
    context = multiprocessing.get_context("forkserver")
    with _STARTED:
        if not _started:
            context.set_forkserver_preload([__name__])
            saved = dict(os.environ)
            os.environ[_SERVER] = "1"
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_HERE, saved.get("PYTHONPATH")]))
            try:
                forkserver.ensure_running()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            _started.append(True)
    return context


def _run_in_child(args: list[str], cwd: str, env: dict, out: str, err: str, barrier: tuple | None) -> None:
    """The forked child: the streams, directory, environment and argv of a fresh `python -m
    mlflow_sweeper ARGS`, then the CLI, then what a fresh interpreter runs at exit.

    `barrier` (ready, go): say ready, then wait for `go` to exist, so that agents started one by
    one begin their sweeps at the same moment."""
    for fds, path in (((1, 2), out),) if out == err else (((1,), out), ((2,), err)):
        target = os.open(path, os.O_WRONLY | os.O_APPEND)
        for fd in fds:
            os.dup2(target, fd)
        os.close(target)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [MAIN, *args]
    from mlflow_sweeper.cli import main

    if barrier:
        ready, go = barrier
        Path(ready).touch()
        while not os.path.exists(go):
            time.sleep(0.001)
    try:
        main(args=args, prog_name="mlflow-sweeper")
    finally:  # as the interpreter exits: wait for its threads, then the exit functions
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()


def command(args) -> list[str]:
    """The command a fresh run is: `python -m mlflow_sweeper ARGS`."""
    return [sys.executable, "-m", "mlflow_sweeper", *map(str, args)]


class ForkedCli:
    """What the tests use of a `subprocess.Popen` of the CLI: pid, poll, wait, communicate,
    signals, returncode. Its stdout goes to the file `stdout` (or to a file of its own), its
    stderr to `stderr`, or to the same file when None; both are truncated first.

    `barrier` (ready, go): the run touches `ready` and waits for `go` before the CLI starts."""

    def __init__(
        self, args, cwd: Path, env: dict, stdout: Path | None = None, stderr: Path | None = None,
        barrier: tuple | None = None,
    ):  # fmt: skip
        argv = [str(arg) for arg in args]
        self.args = command(argv)
        self._scratch = None if stdout else tempfile.TemporaryDirectory(prefix="sweeper-cli-")
        self.output = Path(stdout or Path(self._scratch.name, "output"))
        streams = [self.output] if stderr is None else [self.output, Path(stderr)]
        for stream in streams:
            stream.write_bytes(b"")
        self._process = _context().Process(
            target=_run_in_child,
            args=(argv, str(cwd), env, str(streams[0]), str(streams[-1]), barrier),
        )
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, None]:
        self.wait(timeout)
        return self.output.read_text(errors="replace"), None

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def run(args, *, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """`subprocess.run([python, -m, mlflow_sweeper, *args], capture_output=True, text=True)`,
    forked (a `ForkedCli`): the same CompletedProcess; after `timeout` seconds the run and its
    children are killed and TimeoutExpired raised."""
    with tempfile.TemporaryDirectory(prefix="sweeper-cli-") as streams:
        out, err = Path(streams, "stdout"), Path(streams, "stderr")
        child = ForkedCli(args, cwd, env, out, err, None)
        try:
            child.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_tree(child.pid)
            child.wait()
            timed_out = True
        stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
    if timed_out:
        raise subprocess.TimeoutExpired(child.args, timeout, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it (trials, server workers)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
