"""A local trial's exit status, written beside its log by the shell it runs under, so that an
agent taking over from a dead one knows how the trial ended: real processes, no agent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mlflow_sweeper.launch.exit_status import exit_file, read_exit_status, recording_exit

RUN = "0123456789abcdef"


def run(tmp_path, code: str) -> tuple[int, object]:
    log = tmp_path / "trial-3.log"
    argv = recording_exit([sys.executable, "-c", code], log, str(tmp_path), dict(os.environ))
    finished = subprocess.run(argv, env={**os.environ, "MLFLOW_RUN_ID": RUN}, cwd=tmp_path, timeout=60)
    return finished.returncode, read_exit_status(log, RUN)


@pytest.mark.parametrize(("code", "status"), [("pass", 0), ("import sys; sys.exit(7)", 7)])
def test_the_status_is_kept_and_passed_on(tmp_path, code, status):
    returned, kept = run(tmp_path, code)
    assert returned == status and kept.code == status
    assert abs(kept.ended - time.time()) < 60
    assert exit_file(tmp_path / "trial-3.log").read_text() == f"{RUN} {status}\n"


def test_a_death_by_signal_is_passed_on_as_one(tmp_path):
    """The agent sees what it saw without the shell: killed by SIGKILL is -9, not 137; a crash
    (SIGSEGV) leaves no core file of the shell's own."""
    returned, kept = run(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert returned == -signal.SIGKILL and kept.code == -signal.SIGKILL
    returned, kept = run(tmp_path, "import os, resource, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert returned == -signal.SIGSEGV and kept.code == -signal.SIGSEGV
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("core")]


def test_another_runs_status_or_none_is_not_read(tmp_path):
    log = tmp_path / "trial-3.log"
    assert read_exit_status(log, RUN) is None
    exit_file(log).write_text("another-run 0\n")
    assert read_exit_status(log, RUN) is None
    exit_file(log).write_text(f"{RUN} ")  # being written
    assert read_exit_status(log, RUN) is None


def test_an_earlier_attempts_status_is_removed_at_launch(tmp_path):
    log = tmp_path / "trial-3.log"
    exit_file(log).write_text(f"{RUN} 0\n")
    recording_exit(["true"], log, str(tmp_path), dict(os.environ))
    assert not exit_file(log).exists()


def test_a_program_that_cannot_run_fails_at_launch_as_without_the_shell(tmp_path):
    env = dict(os.environ)
    with pytest.raises(FileNotFoundError):
        recording_exit(["no-such-program-here"], tmp_path / "t.log", str(tmp_path), env)
    with pytest.raises(FileNotFoundError):
        recording_exit(["./missing.sh"], tmp_path / "t.log", str(tmp_path), env)
    (tmp_path / "plain.sh").write_text("echo hi\n")
    with pytest.raises(PermissionError):
        recording_exit(["./plain.sh"], tmp_path / "t.log", str(tmp_path), env)
    (tmp_path / "plain.sh").chmod(0o755)  # no `#!`: the kernel refuses it, a shell would run it
    with pytest.raises(OSError, match="Exec format error"):
        recording_exit(["./plain.sh"], tmp_path / "t.log", str(tmp_path), env)


def test_the_program_is_found_as_its_own_start_would_find_it(tmp_path):
    """A shell builtin's name runs the program (`echo`: /bin/echo's rules, not dash's); a relative
    PATH entry is the trial's working directory's."""
    argv = recording_exit(["echo", "a"], tmp_path / "t.log", str(tmp_path), dict(os.environ))
    assert os.path.isabs(argv[4]) and argv[4].endswith("/echo") and argv[5:] == ["a"]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mine").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "mine").chmod(0o755)
    env = {**os.environ, "PATH": "bin" + os.pathsep + os.environ["PATH"]}
    argv = recording_exit(["mine"], tmp_path / "t.log", str(tmp_path), env)
    assert argv[4] == str(tmp_path / "bin" / "mine")
