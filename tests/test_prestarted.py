"""Test trials handed over to a prestarted fork (`tests/project/prestarted.py`) behave as the
same script run as it is: its arguments, directory, environment, streams and exit, signals passed
on, and the fork gone when its stand-in is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import PROJECT, cli_env, prestarted

SCRIPT = f"""
import json, os, sys, time
sys.path.insert(0, {str(PROJECT)!r})
import prestarted
prestarted.hand_over(__file__)
said = {{"pid": os.getpid(), "cwd": os.getcwd(), "mark": os.environ.get("MARK"), "args": sys.argv[1:]}}
print(json.dumps({{**said, "mlflow": "mlflow" in sys.modules}}), flush=True)
print("to stderr", file=sys.stderr, flush=True)
what = sys.argv[1]
if what == "exit":
    sys.exit(int(sys.argv[2]))
if what == "raise":
    raise ValueError("boom")
if what == "sleep":
    time.sleep(60)
"""


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "trial.py"
    path.write_text(SCRIPT)
    env = cli_env({"MARK": "here"})
    address = env[prestarted.PRESTARTED]
    deadline = time.monotonic() + 60
    while not os.path.exists(address):  # the server's imports done, it listens
        assert time.monotonic() < deadline, "the prestarted server did not start"
        time.sleep(0.1)
    return path, env


def _start(script, *args, env, cwd):
    return subprocess.Popen(
        [sys.executable, str(script), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _said(output: str) -> dict:
    return json.loads(output.splitlines()[0])


@pytest.mark.parametrize(("args", "code"), [(["exit", "0"], 0), (["exit", "3"], 3), (["raise"], 1)])
def test_a_handed_over_trial_has_its_arguments_directory_environment_streams(script, tmp_path, args, code):
    path, env = script
    here = tmp_path / "elsewhere"
    here.mkdir()
    trial = _start(path, *args, env=env, cwd=here)
    out, err = trial.communicate(timeout=60)
    assert trial.returncode == code, err
    said = _said(out)
    assert said["pid"] != trial.pid and said["mlflow"]  # handed over to a fork that has imported MLflow
    assert said["cwd"] == str(here) and said["mark"] == "here" and said["args"] == args
    assert err.startswith("to stderr")
    assert ("ValueError: boom" in err) == (args == ["raise"])


def test_without_a_server_or_from_another_python_the_trial_runs_as_it_is(script, tmp_path):
    path, env = script
    nowhere = {**env, prestarted.PRESTARTED: str(tmp_path / "none")}
    alone = subprocess.run([sys.executable, str(path), "exit", "0"], env=nowhere, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert alone.returncode == 0 and not _said(alone.stdout)["mlflow"]
    other = subprocess.run(["/usr/bin/python3", "-I", str(path), "exit", "0"], env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert other.returncode == 0 and not _said(other.stdout)["mlflow"], other.stderr


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_stand_in_reaches_the_fork_and_the_stand_in_ends_by_it(script, tmp_path, number):
    path, env = script
    trial = _start(path, "sleep", env=env, cwd=tmp_path)
    fork = psutil.Process(_said(trial.stdout.readline())["pid"])
    trial.send_signal(number)
    assert trial.wait(timeout=30) == -number
    assert psutil.wait_procs([fork], timeout=30)[1] == []


def test_killing_the_stand_in_kills_the_fork(script, tmp_path):
    path, env = script
    trial = _start(path, "sleep", env=env, cwd=tmp_path)
    fork = psutil.Process(_said(trial.stdout.readline())["pid"])
    trial.kill()
    assert trial.wait(timeout=30) == -signal.SIGKILL
    assert psutil.wait_procs([fork], timeout=30)[1] == [], "the fork outlived its stand-in"
