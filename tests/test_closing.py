"""Closing a sweep in-process: the close actions run through the study's election, once."""

from __future__ import annotations

import pytest
from conftest import write_config

from mlflow_sweeper.agent.closing import CLOSE_ACTIONS, CloseAction, CloseContext, FinishParent, close_sweep
from mlflow_sweeper.algorithms import PointSource
from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy, agent_id
from mlflow_sweeper.record import BEST_RUN_TAG, Recorder
from mlflow_sweeper.storages import open_mlflow_tracking, open_optuna_storage


@pytest.fixture
def finished_sweep(tmp_path, monkeypatch):
    """A one-point sweep whose only trial completed with score 5, its parent still RUNNING."""
    monkeypatch.chdir(tmp_path)
    config = load_config(write_config(tmp_path, parameters={"x": [1], "y": [10]}))
    recorder = Recorder(open_mlflow_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}"), config)
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), agent_id())
    parent_id = study.create_or_attach(recorder.create_parent, recorder.parent_state)
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
