"""Trials on a plugin backend, end to end: the path of `kubernetes`, `databricks` and every backend
registered under MLflow's `mlflow.project_backend` entry point group.

The backend `sweeper-test` (tests/backend_plugin) behaves like a remote one: it creates the run
itself, queues the job, runs the entry point asynchronously and ends the run. The sweeper must nest
those runs under the parent, tag and parametrise them, read their values, retry failures, cancel
them on Ctrl-C and on `trial_timeout`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT, cli_env, mlflow_runs, optuna_trials, read_records, run_cli, write_config

PLUGIN_PATH = str(Path(__file__).resolve().parent / "backend_plugin")


def plugin_env() -> dict:
    return {"PYTHONPATH": PLUGIN_PATH + os.pathsep + os.environ.get("PYTHONPATH", "")}


def backend_config(tmp_path: Path, behave, **extra) -> Path:
    parameters = {"x": [1, 2], "y": [10], "behave": behave, "record": str(tmp_path / "records.jsonl")}
    return write_config(
        tmp_path,
        entry_point="train",
        project=str(PROJECT),
        backend="sweeper-test",
        backend_config={"schedule_delay": 0.3},
        parameters=parameters,
        **extra,
    )


def trial_runs(tmp_path: Path, deleted: bool = False) -> list:
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", deleted=deleted)
    return [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]


def parent_run(tmp_path: Path):
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", deleted=True)
    parents = [r for r in runs if r.data.tags.get("sweeper.role") == "parent"]
    assert len(parents) == 1
    return parents[0]


def test_plugin_backend_trials_are_nested_tagged_and_scored(tmp_path):
    config = backend_config(tmp_path, "ok")
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path, env=plugin_env())
    assert result.returncode == 0, result.stdout + result.stderr

    parent = parent_run(tmp_path)
    assert parent.info.status == "FINISHED"
    runs = trial_runs(tmp_path)
    assert len(runs) == 2
    for run in runs:
        tags = run.data.tags
        assert tags["sweeper_test_backend.job"] == "submitted"  # the backend created this run
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["sweeper.sweep"] == "exp/s1"
        assert tags["sweeper.role"] == "trial"
        assert tags["mlflow.project.backend"] == "sweeper-test"
        assert run.info.status == "FINISHED"
        assert run.data.metrics["score"] == float(run.data.params["x"]) + 10
        assert run.data.params["y"] == "10" and run.data.params["behave"] == "ok"
    numbers = sorted(int(r.data.tags["sweeper.trial"]) for r in runs)
    assert numbers == [0, 1]
    best = max(runs, key=lambda r: r.data.metrics["score"])
    assert parent.data.tags["sweeper.best_run_id"] == best.info.run_id
    trials = optuna_trials(f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}")
    assert sorted(t.value for t in trials) == [11.0, 12.0]
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {r.info.run_id for r in runs}


@pytest.mark.extended
def test_plugin_backend_failed_trial_is_retried(tmp_path):
    config = backend_config(tmp_path, "fail_once")
    result = run_cli("sweep", config, cwd=tmp_path, env=plugin_env())
    assert result.returncode == 0, result.stdout + result.stderr
    runs = trial_runs(tmp_path, deleted=True)
    failed = [r for r in runs if r.info.status == "FAILED"]
    finished = [r for r in runs if r.info.status == "FINISHED" and r.info.lifecycle_stage == "active"]
    assert len(failed) == 2 and len(finished) == 2
    assert all(r.data.tags.get("sweeper.replaced_by") in {f.info.run_id for f in finished} for r in failed)
    assert len(read_records(tmp_path / "records.jsonl")) == 4


def test_plugin_backend_trials_on_a_postgresql_store_are_not_starved_of_connections(tmp_path, postgres_db):
    """The backend runs in the agent's process and ends its jobs' runs from threads of its own,
    outside the agent's turns at the store: the agent's small MLflow pool leaves them room. (It
    did not: the agent hung on "QueuePool limit of size 1 overflow 1 reached", even with -j 1.)"""
    store = postgres_db()
    for jobs in ("1", "2"):
        config = backend_config(tmp_path / jobs, "ok", mlflow_storage=store, sweep_name=f"s{jobs}")
        result = run_cli("sweep", config, "-j", jobs, cwd=tmp_path / jobs, env=plugin_env(), timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        trials = [r for r in mlflow_runs(store) if r.data.tags.get("sweeper.sweep") == f"exp/s{jobs}"]
        assert sorted(r.data.tags.get("sweeper.role") for r in trials) == ["parent", "trial", "trial"]
        assert all(r.info.status == "FINISHED" for r in trials)


@pytest.mark.extended
def test_plugin_backend_trial_timeout_kills_the_job(tmp_path):
    config = backend_config(tmp_path, "hang", trial_timeout=4, max_retries=0)
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path, env=plugin_env())
    assert result.returncode == 1, result.stdout + result.stderr
    runs = trial_runs(tmp_path, deleted=True)
    assert len(runs) == 2 and all(r.info.status == "KILLED" for r in runs), [r.info.status for r in runs]
    pids = [line["pid"] for line in read_records(tmp_path / "records.jsonl")]
    assert len(pids) == 2
    time.sleep(1)
    assert not [pid for pid in pids if _alive(pid)], "a timed-out job is still running"


@pytest.mark.extended
def test_plugin_backend_ctrl_c_cancels_the_jobs_and_resume_completes(tmp_path):
    gate = tmp_path / "go"
    config = backend_config(tmp_path, f"block:{gate}")
    record = tmp_path / "records.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow_sweeper", "sweep", str(config), "-j", "2"],
        cwd=tmp_path, env=cli_env(plugin_env()), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(read_records(record)) < 2:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the jobs did not start"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    runs = trial_runs(tmp_path, deleted=True)
    assert len(runs) == 2 and all(r.info.status == "KILLED" for r in runs), [r.info.status for r in runs]
    pids = [line["pid"] for line in read_records(record)]
    time.sleep(1)
    assert not [pid for pid in pids if _alive(pid)], "a cancelled job is still running"
    assert parent_run(tmp_path).info.status == "RUNNING"

    gate.touch()
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path, env=plugin_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert parent_run(tmp_path).info.status == "FINISHED"
    finished = [r for r in trial_runs(tmp_path) if r.info.status == "FINISHED"]
    assert sorted(int(r.data.params["x"]) for r in finished) == [1, 2]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(autouse=True)
def _no_stray_jobs(tmp_path):
    yield
    import psutil

    for line in read_records(tmp_path / "records.jsonl"):
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(line["pid"]).kill()


@pytest.mark.extended  # a plugin backend: the test above
def test_plugin_backend_like_kubernetes_on_a_database_store(tmp_path, postgres_db):
    """As MLflow's kubernetes backend: `get_status()` gives `RunStatus` numbers, and the backend's
    own MLflow calls (creating each run) share the agent's small database pool with its `-j 4`
    workers. A relative `path` value, given or defaulted, resolves against the project, not
    against the directory the agent was started in."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT / "train.py", project)
    (project / "data").mkdir()
    (project / "data" / "given.txt").write_text("given")
    (project / "data" / "default.txt").write_text("default")
    (project / "MLproject").write_text(
        "name: with-data\n"
        "entry_points:\n"
        "  train:\n"
        "    parameters:\n"
        "      x: {type: string, default: '0'}\n"
        "      y: {type: string, default: '0'}\n"
        "      behave: {type: string, default: ok}\n"
        "      record: {type: string, default: ''}\n"
        "      given: {type: path, default: data/default.txt}\n"
        "      fallback: {type: path, default: data/default.txt}\n"
        "    command: python train.py x={x} y={y} behave={behave} record={record} given={given}"
        " fallback={fallback}\n"
    )
    mlflow_url = postgres_db("mlflow")
    record = tmp_path / "records.jsonl"
    config = write_config(
        tmp_path,
        entry_point="train",
        project=str(project),
        backend="sweeper-test",
        backend_config={"schedule_delay": 0.2, "numeric_status": True},
        parameters={"x": [1, 2, 3, 4], "y": [10], "behave": "sleep:1", "record": str(record),
                    "given": "data/given.txt"},
        mlflow_storage=mlflow_url,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("sweep", str(config), "-j", "4", cwd=elsewhere, env=plugin_env())
    assert result.returncode == 0, result.stdout + result.stderr
    runs = [r for r in mlflow_runs(mlflow_url) if r.data.tags.get("sweeper.role") == "trial"]
    assert sorted(float(r.data.metrics["score"]) for r in runs) == [11, 12, 13, 14]
    assert all(r.info.status == "FINISHED" for r in runs)
    lines = read_records(record)
    assert len(lines) == 4
    for line in lines:
        assert Path(line["params"]["given"]).read_text() == "given", line
        assert Path(line["params"]["fallback"]).read_text() == "default", line
