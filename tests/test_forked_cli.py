"""The tests' forked CLI runs (`forked_cli`) behave as the CLI started afresh."""

from __future__ import annotations

import signal
import subprocess

import forked_cli
import pytest
from conftest import cli_env, run_cli, start_cli, write_config


@pytest.mark.parametrize("args", [["--help"], ["status", "missing.yaml"], ["status", "sweep.yaml", "--json"]])
def test_a_forked_run_gives_what_a_fresh_run_gives(tmp_path, args):
    write_config(tmp_path)
    forked, fresh = (run_cli(*args, cwd=tmp_path, fresh=fresh) for fresh in (False, True))
    assert forked.returncode == fresh.returncode
    assert forked.stdout == fresh.stdout
    assert forked.stderr.splitlines()[-1:] == fresh.stderr.splitlines()[-1:]


def test_a_forked_run_sees_its_own_directory_and_environment(tmp_path):
    for mark in ("one", "two"):
        here = tmp_path / mark
        write_config(here, command="python -c 'import os; assert os.environ[\"MARK\"] == \"one\"'", spec=None,
                     parameters={"x": [1]})  # fmt: skip
        result = run_cli("sweep", "sweep.yaml", cwd=here, env={"MARK": mark})
        assert (result.returncode == 0) == (mark == "one"), result.stderr


def test_a_started_run_can_be_signalled_and_waited_for(tmp_path):
    write_config(tmp_path, command="sleep 60", spec=None, parameters={"x": [1]})
    agent = start_cli("sweep", "sweep.yaml", cwd=tmp_path)
    assert isinstance(agent, forked_cli.ForkedCli)
    with pytest.raises(subprocess.TimeoutExpired):
        agent.wait(timeout=0.5)
    agent.send_signal(signal.SIGKILL)
    assert agent.wait(timeout=30) == -signal.SIGKILL
    assert agent.poll() == -signal.SIGKILL


def test_a_run_that_changes_pythonpath_is_not_forked(tmp_path):
    assert forked_cli.forkable(cli_env())
    assert not forked_cli.forkable(cli_env({"PYTHONPATH": str(tmp_path)}))
