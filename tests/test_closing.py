"""Closing a sweep in-process: the close actions run through the study's election, once."""

from __future__ import annotations

import dataclasses
import io
import logging
import socket
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest
from conftest import write_config

from mlflow_sweeper.agent.closing import CLOSE_ACTIONS, CloseAction, CloseContext, FinishParent, close_sweep
from mlflow_sweeper.agent.ending import SweepEnd
from mlflow_sweeper.agent.result import SweepResult
from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy, agent_id
from mlflow_sweeper.progress import Reporter
from mlflow_sweeper.record import BEST_RUN_TAG, Recorder
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.storages import open_mlflow_tracking, open_optuna_storage


@pytest.fixture
def finished_sweep(tmp_path, monkeypatch):
    """A one-point sweep whose only trial completed with score 5, its parent still RUNNING."""
    monkeypatch.chdir(tmp_path)
    config = load_config(write_config(tmp_path, parameters={"x": [1], "y": [10]}))
    recorder = Recorder(open_mlflow_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}"), config)
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), agent_id())
    parent_id = study.create_or_attach(recorder.parent.create, recorder.parent.state)
    work = study.claim()
    run_id = recorder.create_trial_run(parent_id, work.number, work.attempt, work.params, {})
    study.bind_run(work, run_id)
    study.launched(work)
    recorder.end_trial_run(run_id, "FINISHED")
    study.complete(work, 5.0)
    trials = study.complete_trials()
    assert trials is not None
    context = CloseContext(config, study, recorder, parent_id, trials, study.best_trial())
    return context, run_id


class Count(CloseAction):
    def __init__(self):
        self.runs = 0

    def run(self, context):
        self.runs += 1


def test_the_elected_agent_records_the_best_and_finishes_the_parent_once(finished_sweep):
    context, run_id = finished_sweep
    count = Count()
    assert close_sweep(context, [*CLOSE_ACTIONS, count]) is True
    assert context.study.is_closed()
    parent = context.recorder.client.get_run(context.parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["score"] == 5.0
    assert parent.data.tags[BEST_RUN_TAG] == run_id
    assert close_sweep(context, [*CLOSE_ACTIONS, count]) is False  # closed already: nothing runs
    assert count.runs == 1


def test_the_parent_is_finished_last():
    assert isinstance(CLOSE_ACTIONS[-1], FinishParent)


def test_a_run_its_training_code_ended_is_not_ended_again(tmp_path, monkeypatch):
    """The agent reads the run once after the process ends: a run the training code already
    ended FINISHED keeps its own end time (no second write); any other status is set."""
    monkeypatch.chdir(tmp_path)
    config = load_config(write_config(tmp_path, parameters={"x": [1, 2]}))
    client = open_mlflow_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")
    recorder = Recorder(client, config)
    parent_id = recorder.parent.create()
    ended_by_code = recorder.create_trial_run(parent_id, 0, 1, {"x": 1}, {})
    client.log_metric(ended_by_code, "score", 3.0)
    client.set_terminated(ended_by_code, "FINISHED", end_time=1_000)
    still_running = recorder.create_trial_run(parent_id, 1, 1, {"x": 2}, {})

    reading = recorder.read_run(ended_by_code, ("score", "other"))
    assert reading.metrics == {"score": 3.0, "other": None} and reading.ended_as == "FINISHED"
    recorder.end_trial_run(ended_by_code, "FINISHED", ended_as=reading.ended_as)
    assert client.get_run(ended_by_code).info.end_time == 1_000  # left as the code ended it

    assert recorder.read_run(still_running, ("score",)).ended_as is None
    recorder.end_trial_run(still_running, "FINISHED", ended_as=None)
    assert client.get_run(still_running).info.status == "FINISHED"

    recorder.end_trial_run(ended_by_code, "FAILED", ended_as="FINISHED")  # the agent's verdict wins
    assert client.get_run(ended_by_code).info.status == "FAILED"


def end_of(context: CloseContext, study: SweepStudy, **config_keys) -> SweepEnd:
    """An agent's end of the sweep, with the parts the end uses (a double of our own `SweepParts`)."""
    config = dataclasses.replace(context.config, **config_keys)
    parts = SimpleNamespace(
        config=config,
        study=study,
        recorder=context.recorder,
        parent_id=context.parent_id,
        console=Reporter(stream=io.StringIO(), live=False),
        result=SweepResult(config.identity),
        log_dir=config.log_dir,
    )
    return SweepEnd(parts)  # type: ignore[arg-type]


def another_agent(context: CloseContext) -> SweepStudy:
    config = context.config
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), agent_id())
    study.find()
    return study


def said_within(caplog, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while text not in caplog.text:
        assert time.monotonic() < deadline, f"{text!r} not said: {caplog.text}"
        time.sleep(0.2)


def closing_slowly(context: CloseContext) -> None:
    """The closer's actions, run by the test (this agent won the election before)."""
    for action in CLOSE_ACTIONS:
        action.run(context)
    context.study.mark_closed()


@pytest.mark.timeout(300)
def test_an_agent_not_elected_says_complete_once_the_closer_has_finished_the_parent(finished_sweep, caplog):
    """Its "complete" is said of a closed sweep: it waits while another agent closes."""
    context, _ = finished_sweep
    assert context.study.elect_closer()  # this agent is closing (slowly)
    waiting = threading.Thread(target=lambda: end_of(context, another_agent(context)).finish(), daemon=True)
    try:
        with caplog.at_level(logging.INFO, logger="mlflow_sweeper"):
            waiting.start()
            said_within(caplog, "waiting for the agent closing the sweep to finish its parent run")
            assert waiting.is_alive() and ": complete" not in caplog.text
            closing_slowly(context)
            waiting.join(timeout=60)
    finally:
        context.study.give_up_close("the test ended")  # nothing once closed
    assert not waiting.is_alive()
    assert context.recorder.client.get_run(context.parent_id).info.status == "FINISHED"
    assert f"{context.config.identity}: complete, parent run {context.parent_id}, best 5" in caplog.text
    assert "still closing it" not in caplog.text


@pytest.mark.timeout(300)
def test_an_agent_waits_for_a_live_closer_no_longer_than_its_patience(finished_sweep, caplog, monkeypatch):
    """A closer alive but stuck: the other agent leaves after stale_after, saying so."""
    from mlflow_sweeper.agent import ending

    context, _ = finished_sweep
    monkeypatch.setattr(ending, "CLOSE_PATIENCE", 0.0)
    assert context.study.elect_closer()
    try:
        with caplog.at_level(logging.INFO, logger="mlflow_sweeper"):
            result = end_of(context, another_agent(context), stale_after=3.0).finish()
    finally:
        context.study.give_up_close("the test ended")
    assert result.finished
    assert "(another agent is still closing it: the parent is not FINISHED yet)" in caplog.text
    assert context.recorder.client.get_run(context.parent_id).info.status == "RUNNING"


@pytest.mark.timeout(300)
def test_an_agent_not_elected_takes_the_close_over_when_the_closer_is_gone(tmp_path, finished_sweep):
    context, _ = finished_sweep
    config = context.config
    gone = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), dead_agent())
    gone.find()
    assert gone.elect_closer()  # ... and its process ended before it closed the sweep
    result = end_of(context, another_agent(context)).finish()
    assert result.finished
    assert context.recorder.client.get_run(context.parent_id).info.status == "FINISHED"
    assert context.study.is_closed()


class Failing(CloseAction):
    def run(self, context):
        raise RuntimeError("the registry refused")


def test_a_close_that_failed_runs_again_at_the_next_election(finished_sweep):
    """A close action raised: the token is given up, so the agent's retry at its end (or another
    agent's) is elected, instead of waiting on a close that reads as under way."""
    context, _ = finished_sweep
    with pytest.raises(RuntimeError, match="the registry refused"):
        close_sweep(context, [*CLOSE_ACTIONS[:-1], Failing(), CLOSE_ACTIONS[-1]])
    assert not context.study.is_closed() and not context.study.close_begun()
    assert close_sweep(context) is True
    assert context.recorder.client.get_run(context.parent_id).info.status == "FINISHED"


def dead_agent() -> str:
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:deadbeef"
