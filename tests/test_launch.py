"""The launcher contract in-process: which launcher a config gets, and a backend that creates its
own run (MLflow's `local` backend through `mlflow.projects.run(synchronous=False)`) ending up
nested under the parent with the sweeper's tags and the trial's params."""

from __future__ import annotations

import inspect
import os
import time

import mlflow
import pytest
from conftest import PROJECT, write_config
from mlflow.tracking import MlflowClient

from mlflow_sweeper.agent.trial import RecordedRuns
from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import RUN_ATTR, SweepStudy, agent_id
from mlflow_sweeper.launch import (
    LAUNCHERS,
    BackendLauncher,
    CommandLauncher,
    Launcher,
    LocalProjectLauncher,
    TrialRequest,
    launcher_class,
    make_launcher,
)
from mlflow_sweeper.record import Recorder
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.storages import open_mlflow_tracking, open_optuna_storage


def entry_point_config(tmp_path, **keys):
    return load_config(
        write_config(
            tmp_path, entry_point="train", project=str(PROJECT), parameters={"x": [1], "y": [10]}, **keys
        )
    )


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, CommandLauncher),
        ({"entry_point": "train", "project": str(PROJECT)}, LocalProjectLauncher),
        ({"entry_point": "train", "project": str(PROJECT), "backend": "kubernetes"}, BackendLauncher),
        ({"entry_point": "train", "project": str(PROJECT), "backend": "my-plugin"}, BackendLauncher),
    ],
)
def test_the_dispatch_table_picks_the_launcher_by_mode_and_backend(tmp_path, keys, expected):
    config = load_config(write_config(tmp_path, **keys))
    assert launcher_class(config) is expected
    launcher = make_launcher(config, "sqlite:///unused.db", tmp_path / "logs")
    assert type(launcher) is expected
    assert launcher.config is config


def test_every_launcher_in_the_table_can_be_built():
    for launcher in LAUNCHERS.values():
        assert issubclass(launcher, Launcher) and not inspect.isabstract(launcher)


@pytest.fixture
def global_tracking_uri(tmp_path, monkeypatch):
    """The backend launcher points MLflow's process-wide tracking URI at the sweep's store; the
    store's default artifact root (./mlruns) lands in the test's directory."""
    monkeypatch.chdir(tmp_path)
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)


def launch_on_local_backend(tmp_path, behave: str):
    """One trial through `BackendLauncher` on MLflow's local backend, with the real recorder and
    study; returns what the test needs to look at."""
    config = entry_point_config(tmp_path, backend="local")
    client = open_mlflow_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")
    recorder = Recorder(client, config)
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), agent_id())
    parent_id = study.create_or_attach(recorder.parent.create, recorder.parent.state)
    work = study.claim()
    params = {**work.params, "behave": behave}
    runs = RecordedRuns(recorder, study, parent_id, work, params)
    launcher = BackendLauncher(config, client.tracking_uri, config.log_dir)
    launcher.prepare()
    handle = launcher.launch(TrialRequest(work.number, work.attempt, recorder.experiment_id, params, runs))
    assert handle.run_id and handle.run_id == runs.run_id == work.run_id
    study.launched(work)  # as the agent does once the trial is launched: the run id is stored
    return config, client, recorder, study, parent_id, work, handle


def poll_until_done(handle) -> bool | None:
    for _ in range(1200):  # the backend's own subprocess; bounded, not timed
        succeeded = handle.poll()
        if succeeded is not None:
            return succeeded
        time.sleep(0.1)
    return None


def test_a_backend_run_is_adopted_under_the_parent_with_tags_and_params(tmp_path, global_tracking_uri):
    config, client, recorder, study, parent_id, work, handle = launch_on_local_backend(tmp_path, "ok")
    try:
        assert poll_until_done(handle) is True
    finally:
        handle.close()

    run = MlflowClient(tracking_uri=client.tracking_uri).get_run(handle.run_id)
    assert run.info.experiment_id == recorder.experiment_id
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == parent_id
    assert tags["sweeper.sweep"] == config.identity
    assert tags["sweeper.role"] == "trial"
    assert tags["sweeper.trial"] == str(work.number)
    assert tags["sweeper.attempt"] == str(work.attempt)
    assert tags["mlflow.runName"] == f"{config.sweep_name}-{work.number}"  # as a local trial's
    assert tags["mlflow.project.backend"] == "local"
    assert {"x": "1", "y": "10", "behave": "ok"}.items() <= run.data.params.items()
    assert run.data.metrics["score"] == 11.0
    trial = study.storage.get_trial(work.trial_id)
    assert trial.user_attrs[RUN_ATTR] == handle.run_id


def test_a_cancelled_backend_run_ends_and_reports_failure(tmp_path, global_tracking_uri):
    _, client, _, _, parent_id, _, handle = launch_on_local_backend(tmp_path, "hang")
    try:
        handle.cancel()
        assert poll_until_done(handle) is False
    finally:
        handle.close()
    # Ending the run KILLED is the agent's settle step; the backend only stops the job.
    run = MlflowClient(tracking_uri=client.tracking_uri).get_run(handle.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent_id


@pytest.mark.parametrize("user", [None, "false"])
def test_the_agent_stops_mlflow_printing_run_urls_but_trials_keep_the_users_setting(monkeypatch, user):
    """On a tracking server, MLflow reads a run once more and prints its URL whenever it ends:
    the agent turns that off for itself; a trial's environment is the user's."""
    from mlflow_sweeper.launch.process import run_env
    from mlflow_sweeper.record import agent_run as record

    if user is None:
        monkeypatch.delenv(record.URL_PRINTING, raising=False)
    else:
        monkeypatch.setenv(record.URL_PRINTING, user)
    monkeypatch.setattr(record, "_USER_URL_PRINTING", [])
    record.quiet_run_urls()
    assert os.environ[record.URL_PRINTING] == (user or "true")
    env = run_env("run", "http://127.0.0.1:5000", "1")
    assert env.get(record.URL_PRINTING) == user


def test_killing_a_trial_whose_session_leader_is_gone_still_stops_its_group():
    """A trial runs under a wrapper that leads its session; a SIGTERM the trial ignores kills
    the wrapper alone. Killing the tree by the wrapper's pid (a second Ctrl-C, after the first
    one's SIGTERM) must still stop the trial: it was left running, and ran beside its re-run."""
    import signal
    import subprocess
    import sys

    import psutil

    from mlflow_sweeper.launch.process import kill_tree

    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(120)"
    )
    wrapper = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {stubborn!r}]); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", wrapper], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    trial = psutil.Process(int(leader.stdout.readline()))
    assert leader.stdout.readline().strip() == "ready"  # ignoring SIGTERM from here on
    os.killpg(leader.pid, signal.SIGTERM)  # the wrapper dies of it, the trial does not
    leader.wait(timeout=30)
    time.sleep(0.5)
    assert trial.is_running() and trial.status() != psutil.STATUS_ZOMBIE
    kill_tree(leader.pid, grace=0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if trial.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    else:
        trial.kill()
        pytest.fail("the trial outlived the kill of its session")
