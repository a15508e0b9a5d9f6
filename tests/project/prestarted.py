"""A test trial's work in a process forked from one that has already imported MLflow.

A test trial is a real process that the agent starts with its real command; most of them import
MLflow to log one metric, some 2 s of CPU each, and the suite runs hundreds of them on two cores.
A trial script that calls `hand_over(__file__)` first asks this module's server (one per test
process, named by `PRESTARTED`) to run the whole script in a fork of a process that has imported
MLflow, with the trial's arguments, directory, environment and standard streams, and then stands
in for that fork: it passes on the signals it gets and ends as the fork ended, with its exit code
or by its signal. When the stand-in is killed, the fork is killed too. Where no server answers,
the script runs as it is.

Only trials that run briefly and are never killed by pid call it: a fork's own pid is not the
process the agent started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys

PRESTARTED = "_SWEEPER_TESTS_PRESTARTED"
_SIGNALS_PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_NUMBER = struct.Struct("!q")


def hand_over(script: str) -> None:
    """Run `script` (this process's own, as `__main__`) in a prestarted fork and end as it ends;
    return at once where there is no server to hand over to."""
    address = os.environ.get(PRESTARTED)
    if not address or not _streams_open():
        return
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.connect(address)
    except OSError:
        server.close()
        return
    ignored = [number for number in _SIGNALS_PASSED_ON if signal.getsignal(number) == signal.SIG_IGN]
    request = json.dumps(
        {"python": _python(), "script": os.path.abspath(script), "argv": sys.argv, "path": sys.path,
         "cwd": os.getcwd(), "env": dict(os.environ), "ignored": ignored}
    ).encode()  # fmt: skip
    passed_on = set(_SIGNALS_PASSED_ON) - set(ignored)
    # a signal that comes before the fork's pid does waits for it, then reaches the fork: the fork
    # may already be running (and saying so) while its pid is on its way here
    signal.pthread_sigmask(signal.SIG_BLOCK, passed_on)
    socket.send_fds(server, [_NUMBER.pack(len(request))], [0, 1, 2])
    server.sendall(request)
    fork = _read_number(server)
    if fork is None:
        os._exit(70)
    if fork < 0:  # another Python than the server's: run here
        server.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, passed_on)
        return
    for number in passed_on:
        signal.signal(number, lambda received, _frame: _pass_on(fork, received))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, passed_on)
    status = _read_number(server)
    if status is None:
        os._exit(70)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def _python() -> list:
    """What tells one Python from another: its environment and version."""
    return [sys.prefix, sys.version]


def _streams_open() -> bool:
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def _pass_on(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _read_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_number(connection: socket.socket) -> int | None:
    data = _read_exactly(connection, _NUMBER.size)
    return None if data is None else _NUMBER.unpack(data)[0]


def start_server() -> str:
    """A server for the trials of this process's agents, stopped as this process exits: the
    address to put in their environment as PRESTARTED. Until it listens, trials run as they are."""
    import atexit
    import shutil
    import subprocess
    import tempfile

    directory = tempfile.mkdtemp(prefix="sweeper-prestarted-")
    address = os.path.join(directory, "socket")
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), address],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    atexit.register(shutil.rmtree, directory, True)
    atexit.register(server.kill)
    return address


def serve(address: str) -> None:
    """The server: import what trials import, then fork a supervisor for each request."""
    import mlflow  # noqa: F401
    import mlflow.tracking.fluent  # noqa: F401
    from mlflow.store.tracking import sqlalchemy_store  # noqa: F401

    import mlflow_sweeper.resume  # noqa: F401 - the checkpointing trials

    _warm_up(mlflow)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped as they end
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    sys.stdout.flush()
    sys.stderr.flush()
    while True:
        connection, _ = listener.accept()
        try:
            header, fds, _, _ = socket.recv_fds(connection, _NUMBER.size, 3)
            request = (
                _read_exactly(connection, _NUMBER.unpack(header)[0]) if len(header) == _NUMBER.size else None
            )
        except OSError:
            request, fds = None, []
        if request is not None and len(fds) == 3:
            request = json.loads(request)
            if request["python"] != _python():
                connection.sendall(_NUMBER.pack(-1))
            elif os.fork() == 0:
                listener.close()
                _supervise(connection, request, fds)
        connection.close()
        for fd in fds:
            os.close(fd)


def _warm_up(mlflow) -> None:
    """One run in a store of its own, so that what MLflow sets up on its first run (some 0.2 s)
    is done once, here, not in every trial."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="sweeper-prestarted-warm-up-")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{directory}/mlflow.db"
    try:
        with mlflow.start_run():
            mlflow.log_metric("warm_up", 1.0)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
        shutil.rmtree(directory, ignore_errors=True)


def _supervise(connection: socket.socket, request: dict, fds: list[int]) -> None:
    """Between the stand-in and the fork: fork the trial, tell the stand-in its pid, then its
    wait status when it ends, or kill it when the stand-in is gone."""
    import select

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        connection.close()
        _run(request, fds)
    for fd in fds:
        os.close(fd)
    connection.sendall(_NUMBER.pack(pid))
    ended = os.pidfd_open(pid)
    while True:
        readable, _, _ = select.select([ended, connection], [], [])
        if ended in readable:
            _, status = os.waitpid(pid, 0)
            try:
                connection.sendall(_NUMBER.pack(status))
            finally:
                os._exit(0)
        if connection in readable and _gone(connection):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os._exit(0)


def _gone(stand_in: socket.socket) -> bool:
    """Whether the stand-in has ended: its end closed, or reset where it left data unread."""
    try:
        return not stand_in.recv(1)
    except OSError:
        return True


def _run(request: dict, fds: list[int]) -> None:
    """The trial: its streams, directory, environment and argv, then the script as `__main__`,
    then what an interpreter does as it exits, and its exit code."""
    import atexit
    import runpy
    import threading
    import traceback

    os.setsid()
    for number in _SIGNALS_PASSED_ON:  # as this process's stand-in started with them
        if number in request["ignored"]:
            signal.signal(number, signal.SIG_IGN)
        else:
            signal.signal(number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(PRESTARTED)  # the script runs here, not handed over again
    sys.argv = request["argv"]
    sys.path[:] = request["path"]
    code = 0
    try:
        runpy.run_path(request["script"], run_name="__main__")
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    serve(sys.argv[1])
