"""The agent's trial path in-process: a real session on a real Optuna study and a real MLflow
store, with a test double of our own `Launcher` whose trials are scripts run inside the test
instead of processes. Retry, `fail_fast`, `trial_timeout`, an interrupt, pruning and the close,
each as the agent does them, in a fraction of a second.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Generator
from pathlib import Path

import pytest
from conftest import write_config
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from mlflow_sweeper.admin import sweep_status, sweep_status_data
from mlflow_sweeper.agent import SweepSession
from mlflow_sweeper.agent.opening import open_parts
from mlflow_sweeper.agent.stop import StopSignal
from mlflow_sweeper.agent.trial import StopRequested, TrialExecution
from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination.fail_fast import fail_fast_reason
from mlflow_sweeper.coordination.names import ATTEMPT
from mlflow_sweeper.devices import NO_DEVICES
from mlflow_sweeper.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from mlflow_sweeper.launch import Launcher, TrialHandle, TrialRequest
from mlflow_sweeper.launch.base import trial_log_name
from mlflow_sweeper.progress import Reporter
from mlflow_sweeper.record import BEST_RUN_TAG, REPLACED_BY_TAG
from mlflow_sweeper.report.table import write_trials_csv

# A trial's script: a generator that yields once per poll while the trial runs and returns
# whether it succeeded. It gets the request, its run id and a client on the sweep's store.
Script = Callable[[TrialRequest, str, MlflowClient], Generator[None, None, bool]]


class ScriptedHandle(TrialHandle):
    def __init__(self, run_id: str, steps: Generator[None, None, bool], pace: float):
        self.run_id = run_id
        self.steps = steps
        self.pace = pace  # seconds per poll: only scripts that run until stopped need any
        self.succeeded: bool | None = None
        self.cancelled = False

    def poll(self) -> bool | None:
        if self.succeeded is None and not self.cancelled:
            try:
                next(self.steps)
            except StopIteration as end:
                self.succeeded = bool(end.value)
        return self.succeeded

    def wait(self, timeout: float) -> bool | None:
        if self.pace:
            time.sleep(min(timeout, self.pace))
        return self.poll()

    def cancel(self) -> None:
        self.cancelled = True
        self.steps.close()


class ScriptedLauncher(Launcher):
    """Our `Launcher` without a process: the trial's run is created through `request.runs`, as a
    local launcher does, and the trial is `script`."""

    def __init__(self, config, tracking_uri, log_dir, checked=None, store_turn=None, *, script, pace=0.0):
        super().__init__(config, tracking_uri, log_dir, checked, store_turn)
        self.script = script
        self.pace = pace
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.handles: list[ScriptedHandle] = []
        self.launched: list[tuple[int, int]] = []  # (trial number, attempt)

    def launch(self, request: TrialRequest) -> TrialHandle:
        run_id = request.runs.create({})
        log = Path(self.log_dir) / trial_log_name(request.number)  # as a real launcher's output
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"trial {request.number} attempt {request.attempt}\n")
        self.launched.append((request.number, request.attempt))
        handle = ScriptedHandle(run_id, self.script(request, run_id, self.client), self.pace)
        self.handles.append(handle)
        return handle


def session_of(tmp_path, monkeypatch, script: Script, pace: float = 0.0, **keys):
    """A real session on a new sweep (SQLite Optuna storage and MLflow store next to its config)."""
    monkeypatch.chdir(tmp_path)
    config = load_config(write_config(tmp_path, **keys))
    launchers: list[ScriptedLauncher] = []

    def launcher_factory(*args):
        launchers.append(ScriptedLauncher(*args, script=script, pace=pace))
        return launchers[0]

    console = Reporter(stream=io.StringIO(), live=False)
    parts = open_parts(config, None, console, StopSignal(), "test-agent", 1, launcher_factory)
    return SweepSession(parts), launchers[0]


def scores(score: Callable[[TrialRequest], float | None], steps: int = 1) -> Script:
    """A trial that logs `score(request)` at `steps` steps (nothing when None) and succeeds."""

    def script(request, run_id, client):
        value = score(request)
        for step in range(steps):
            yield
            if value is not None:
                client.log_metric(run_id, "score", value, step=step)
        return True

    return script


def runs_of(session: SweepSession) -> dict[str, object]:
    client = session.parts.recorder.client
    run_ids = (t.user_attrs.get("mlflow_run_id") for t in session.study.trials())
    return {run_id: client.get_run(run_id) for run_id in run_ids if run_id}


def test_a_sweep_closes_with_its_parent_finished_and_the_best_recorded(tmp_path, monkeypatch):
    by_x = scores(lambda request: request.params["x"] * 10.0)
    session, launcher = session_of(tmp_path, monkeypatch, by_x, parameters={"x": [1, 2, 3]})
    result = session.run()
    assert result.exit_code == EXIT_OK and result.finished
    assert sorted(launcher.launched) == [(0, 1), (1, 1), (2, 1)]
    assert session.study.is_closed()
    client = session.parts.recorder.client
    parent = client.get_run(session.parts.parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["score"] == 30.0
    best = session.study.best_trial()
    assert parent.data.tags[BEST_RUN_TAG] == best.user_attrs["mlflow_run_id"]
    assert all(run.info.status == "FINISHED" for run in runs_of(session).values())


def test_a_failed_attempt_is_retried_and_its_run_replaced(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="mlflow_sweeper")
    def fails_once(request, run_id, client):
        yield
        if request.attempt == 1:
            return False
        client.log_metric(run_id, "score", 1.0)
        return True

    session, launcher = session_of(tmp_path, monkeypatch, fails_once, parameters={"x": [1]}, max_retries=1)
    result = session.run()
    assert result.exit_code == EXIT_OK and not result.failed_for_good
    assert [attempt for _, attempt in launcher.launched] == [1, 2]  # a retry is a new Optuna trial
    complete = [t for t in session.study.trials() if t.state == TrialState.COMPLETE]
    assert [t.value for t in complete] == [1.0]
    client = session.parts.recorder.client
    first, second = (handle.run_id for handle in launcher.handles)
    failed = client.get_run(first)
    assert failed.info.status == "FAILED" and failed.info.lifecycle_stage == "deleted"
    assert failed.data.tags[REPLACED_BY_TAG] == second
    # Optuna numbers attempts (trial 1 is the retry); the console names the point the budget counts
    text = caplog.text
    assert "trial 0 started (point 1 of 1, attempt 1, run " in text
    assert "trial 1 started (point 1 of 1, attempt 2, run " in text


def test_a_trial_that_fails_all_its_attempts_fails_for_good_and_the_sweep_exits_1(tmp_path, monkeypatch):
    def always_fails(request, run_id, client):
        yield
        return False

    session, launcher = session_of(tmp_path, monkeypatch, always_fails, parameters={"x": [1]}, max_retries=1)
    result = session.run()
    assert result.exit_code == EXIT_FAILED and len(result.failed_for_good) == 1
    assert "the run failed" in result.failed_for_good[0]
    assert [attempt for _, attempt in launcher.launched] == [1, 2]
    assert session.parts.recorder.client.get_run(session.parts.parent_id).info.status == "FINISHED"


def test_a_trial_request_carries_its_number_attempt_and_earlier_run(tmp_path, monkeypatch):
    def fails_once(request, run_id, client):
        yield
        if request.attempt == 1:
            return False
        client.log_metric(run_id, "score", 1.0)
        return True

    session, launcher = session_of(tmp_path, monkeypatch, fails_once, parameters={"x": [1]}, max_retries=1)
    seen: list[dict[str, str]] = []
    launch = launcher.launch
    launcher.launch = lambda request: (seen.append(dict(request.env)), launch(request))[1]
    assert session.run().exit_code == EXIT_OK
    first, _ = (handle.run_id for handle in launcher.handles)
    (one, _), (retry, _) = launcher.launched  # a retry is a new Optuna trial
    assert seen == [
        {"SWEEPER_TRIAL": str(one), "SWEEPER_ATTEMPT": "1"},
        {"SWEEPER_TRIAL": str(retry), "SWEEPER_ATTEMPT": "2", "SWEEPER_RESUME_RUN_ID": first},
    ]


def test_a_run_that_never_logs_its_metric_fails_for_good_at_once(tmp_path, monkeypatch):
    """Another attempt would not log it either: no retry, and the sweep exits 1."""
    no_metric = scores(lambda request: None)
    session, launcher = session_of(tmp_path, monkeypatch, no_metric, parameters={"x": [1]}, max_retries=1)
    result = session.run()
    assert result.exit_code == EXIT_FAILED and len(result.failed_for_good) == 1
    assert "did not log the metric 'score'" in result.failed_for_good[0]
    assert [attempt for _, attempt in launcher.launched] == [1]
    assert session.parts.recorder.client.get_run(session.parts.parent_id).info.status == "FINISHED"


def test_fail_fast_stops_the_sweep_when_the_first_trials_all_fail(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="mlflow_sweeper")
    no_metric = scores(lambda request: None)
    session, launcher = session_of(
        tmp_path, monkeypatch, no_metric, parameters={"x": [1, 2, 3, 4]}, max_retries=0, fail_fast=2
    )
    result = session.run()
    assert result.exit_code == EXIT_FAILED and not result.finished
    assert "fail_fast" in result.error
    # each failure's line already says the stop would run it again, never "failed for good"
    assert caplog.text.count("not retried (it runs again on resume if fail_fast stops the sweep)") == 2
    assert "failed for good" not in caplog.text
    assert launcher.launched == [(0, 1), (1, 1)]
    # The failed points keep their attempts for the resume: queued again, attempt 1.
    waiting = [t for t in session.study.trials() if t.state == TrialState.WAITING]
    assert sorted(dict(t.params)["x"] for t in waiting) == [1, 2]
    assert session.parts.recorder.client.get_run(session.parts.parent_id).info.status == "RUNNING"
    # status says why nothing runs, and that the rest is still owed
    status = sweep_status_data(session.parts.config)
    assert status["stopped"] == "fail_fast"
    assert status["stopped_reason"] == "the first 2 trials all failed (fail_fast)"
    text = sweep_status(session.parts.config)
    assert "stopped: the first 2 trials all failed (fail_fast); fix the cause and run the sweep again" in text
    assert "4 remaining" in text and "not owed" not in text


def test_fail_fast_in_one_agent_stops_the_others_and_a_resume_runs_on(tmp_path, monkeypatch):
    """Agents B opened beside A: A's failures fire fail_fast, and B starts no trial (it stopped
    only at a failure of its own before). An agent opened afterwards (the user fixed the cause)
    takes that stop as the past run's and runs the sweep to its end."""
    keys = {"parameters": {"x": [1, 2, 3, 4]}, "max_retries": 0, "fail_fast": 2}
    no_metric = scores(lambda request: None)
    first, _ = session_of(tmp_path, monkeypatch, no_metric, **keys)
    beside, beside_launcher = session_of(tmp_path, monkeypatch, no_metric, **keys)
    assert first.run().exit_code == EXIT_FAILED
    result = beside.run()
    assert result.exit_code == EXIT_FAILED and "the first 2 trials all failed" in result.error
    assert beside_launcher.launched == []

    fixed, launcher = session_of(tmp_path, monkeypatch, scores(lambda request: 1.0), **keys)
    result = fixed.run()
    assert result.exit_code == EXIT_OK and result.finished
    assert len(launcher.launched) == 4


def test_an_old_agents_late_failure_does_not_stop_the_agents_of_a_fixed_resume(tmp_path, monkeypatch):
    """Agent A2 was running a doomed trial when A1 fired fail_fast; the user fixed the cause and
    started B. A2's failure, ending later, takes A1's stop as its own: no new mark that B would
    read as a stop of its run."""
    keys = {"parameters": {"x": [1, 2, 3, 4]}, "max_retries": 0, "fail_fast": 2}
    no_metric = scores(lambda request: None)
    first, _ = session_of(tmp_path, monkeypatch, no_metric, **keys)
    late, _ = session_of(tmp_path, monkeypatch, no_metric, **keys)
    assert first.run().exit_code == EXIT_FAILED
    doomed = late.study.claim()
    fixed, launcher = session_of(tmp_path, monkeypatch, scores(lambda request: 1.0), **keys)
    TrialExecution(late.workers.trial_context, doomed, NO_DEVICES).run()
    assert "the first 2 trials all failed" in late.parts.result.error
    result = fixed.run()
    assert result.exit_code == EXIT_OK and result.finished, result.error


def test_a_sweep_deleted_before_its_first_result_stops_the_agent_cleanly(tmp_path, monkeypatch):
    """The fail_fast mark is read before each claim while nothing has completed: a study deleted
    meanwhile ends the agent with one message, as a failing claim does."""
    import optuna

    session, launcher = session_of(tmp_path, monkeypatch, scores(lambda r: 1.0), parameters={"x": [1, 2]})
    optuna.delete_study(study_name="exp/s1", storage=session.parts.config.optuna_storage)
    result = session.run()
    assert result.exit_code == EXIT_FAILED and "the sweep was deleted" in result.error
    assert launcher.launched == []


def test_a_point_claimed_as_its_agent_stops_goes_back_unstarted(tmp_path, monkeypatch):
    """Another worker of the agent tripped fail_fast (or failed) after this one claimed its point:
    the point is not launched, and goes back to the queue counting no attempt."""
    session, launcher = session_of(tmp_path, monkeypatch, scores(lambda r: 1.0), parameters={"x": [1, 2]})
    work = session.study.claim()
    session.parts.result.error = "exp/s1: the first 3 trials all failed (fail_fast)"
    trial = TrialExecution(session.workers.trial_context, work, NO_DEVICES)
    with pytest.raises(StopRequested):
        trial.run()
    assert launcher.launched == []
    trials = session.study.trials()
    (given_back,) = [t for t in trials if t.state == TrialState.FAIL]
    assert fail_fast_reason(trials, 1) is None  # it says nothing about the project
    assert given_back.user_attrs["fail_reason"].startswith("interrupted before it started")
    (waiting,) = [t for t in trials if t.state == TrialState.WAITING]
    assert int(waiting.system_attrs[ATTEMPT]) == 1 and dict(waiting.params) == dict(given_back.params)
    assert sweep_status_data(session.parts.config)["attempts"] == 0  # nothing was started


def logs_of(client: MlflowClient, run_id: str) -> list[str]:
    return [item.path for item in client.list_artifacts(run_id)]


def forever(request, run_id, client):
    while True:
        yield


def test_a_trial_past_its_timeout_is_stopped_and_its_run_killed(tmp_path, monkeypatch):
    session, launcher = session_of(
        tmp_path, monkeypatch, forever, pace=0.02, parameters={"x": [1]}, max_retries=0, trial_timeout=0.2
    )
    result = session.run()
    assert result.exit_code == EXIT_FAILED
    assert "timed out after 0.2 s (trial_timeout)" in result.failed_for_good[0]
    (handle,) = launcher.handles
    assert handle.cancelled
    assert session.parts.recorder.client.get_run(handle.run_id).info.status == "KILLED"
    assert logs_of(session.parts.recorder.client, handle.run_id) == ["trial-0.log"]


def test_an_interrupt_after_the_close_says_nothing_is_left_to_resume(tmp_path, monkeypatch, caplog):
    """Ctrl-C just after the last trial's close (while the report was written): still exit 130,
    but not "run the same command again to resume" of a sweep that finished."""
    caplog.set_level(logging.INFO, logger="mlflow_sweeper")
    session, _ = session_of(tmp_path, monkeypatch, scores(lambda request: 1.0), parameters={"x": [1]})
    close_if_last = session.end.close_if_last

    def close_then_interrupted() -> None:
        close_if_last()
        session.parts.stop.set()

    session.end.close_if_last = close_then_interrupted
    result = session.run()
    assert result.interrupted and result.exit_code == EXIT_INTERRUPTED
    assert session.study.is_closed()
    assert "interrupted after the sweep finished; nothing is left to resume" in caplog.text
    assert "run the same command again" not in caplog.text


def test_an_interrupt_cancels_the_trial_and_requeues_it_without_counting_an_attempt(tmp_path, monkeypatch):
    stopped: list[StopSignal] = []

    def interrupted(request, run_id, client):
        yield
        stopped[0].set()  # Ctrl-C while the trial runs
        while True:
            yield

    session, launcher = session_of(tmp_path, monkeypatch, interrupted, pace=0.01, parameters={"x": [1, 2]})
    stopped.append(session.parts.stop)
    result = session.run()
    assert result.interrupted and result.exit_code == EXIT_INTERRUPTED
    (handle,) = launcher.handles
    assert handle.cancelled
    client = session.parts.recorder.client
    assert client.get_run(handle.run_id).info.status == "KILLED"
    assert logs_of(client, handle.run_id) == ["trial-0.log"]  # an interrupted attempt keeps its log
    waiting = [t for t in session.study.trials() if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and int(waiting[0].system_attrs[ATTEMPT]) == 1
    assert client.get_run(session.parts.parent_id).info.status == "RUNNING"  # resumable
    # Nothing failed: the report's table says so, and `status` counts no failed point
    table = write_trials_csv(tmp_path / "trials.csv", session.study.trials(), session.parts.config.objective)
    rows = list(csv.DictReader(table.open()))
    assert [row["state"] for row in rows] == ["INTERRUPTED", "WAITING"]
    status = sweep_status_data(session.parts.config)
    assert (status["failed"], status["failed_to_retry"], status["done"]) == (0, 0, 0)


def test_a_trial_whose_code_ended_its_run_is_not_pruned_while_it_exits(tmp_path, monkeypatch):
    """Trial 1 logs worse values than trial 0, then ends its run FINISHED and takes a while to exit
    (an interpreter shutting down, files flushed): it finished its work, and its result is kept."""

    def script(request, run_id, client):
        if request.number == 0:
            for step in range(3):
                client.log_metric(run_id, "score", 10.0, step=step)
                yield
            return True
        for step in range(3):  # before the watch's first read
            client.log_metric(run_id, "score", 0.0, step=step)
        client.set_terminated(run_id, "FINISHED")
        for _ in range(20):  # the pruner's reads come and go meanwhile
            yield
        return True

    session, launcher = session_of(
        tmp_path,
        monkeypatch,
        script,
        pace=0.02,
        parameters={"x": [1, 2]},
        early_stopping={"pruner": "median", "options": {"n_startup_trials": 1}, "interval": 0.05},
    )
    result = session.run()
    assert result.exit_code == EXIT_OK and result.finished
    trials = {t.number: t for t in session.study.trials()}
    assert {n: t.state for n, t in trials.items()} == {0: TrialState.COMPLETE, 1: TrialState.COMPLETE}
    assert trials[1].value == 0.0
    run = session.parts.recorder.client.get_run(launcher.handles[1].run_id)
    assert run.info.status == "FINISHED" and "sweeper.pruned" not in run.data.tags


def test_a_trial_the_pruner_stops_is_pruned_and_its_run_killed_and_tagged(tmp_path, monkeypatch):
    """Trial 0 logs a good history and completes; trial 1 logs a worse value at every step until
    the median pruner, reading its history through the real run, stops it."""

    def script(request, run_id, client):
        if request.number == 0:
            for step in range(3):
                client.log_metric(run_id, "score", 10.0, step=step)
                yield
            return True
        step = 0
        while True:
            client.log_metric(run_id, "score", 0.0, step=step)
            step += 1
            yield

    session, launcher = session_of(
        tmp_path,
        monkeypatch,
        script,
        pace=0.02,
        parameters={"x": [1, 2]},
        max_retries=2,
        early_stopping={"pruner": "median", "options": {"n_startup_trials": 1}, "interval": 0.05},
    )
    result = session.run()
    assert result.exit_code == EXIT_OK and result.finished
    trials = {t.number: t for t in session.study.trials()}
    assert {n: t.state for n, t in trials.items()} == {0: TrialState.COMPLETE, 1: TrialState.PRUNED}
    assert trials[1].intermediate_values and trials[1].value == 0.0  # its history, through the run
    assert len(trials[0].intermediate_values) == 3  # every step reported before it completed
    assert launcher.launched == [(0, 1), (1, 1)]  # a pruned trial is never retried
    pruned = session.parts.recorder.client.get_run(launcher.handles[1].run_id)
    assert pruned.info.status == "KILLED"
    assert pruned.data.tags["sweeper.pruned"] == "true"
    assert logs_of(session.parts.recorder.client, pruned.info.run_id) == ["trial-1.log"]
    assert session.parts.recorder.client.get_run(session.parts.parent_id).info.status == "FINISHED"
    # done counts points that need nothing more: a pruned one too
    assert "points: 2/2 done, 0 running, 0 failed, 1 pruned, 0 remaining (2 attempts)" in sweep_status(
        session.parts.config
    )


def test_a_best_written_after_the_close_began_does_not_replace_the_sweeps_best(tmp_path, monkeypatch):
    """Trials are told to Optuna before their best is written. Trial 0 (11) ended first and read
    the parent before trial 1 (12) wrote its best; the close then ran, and trial 0's write landed
    last: the parent still shows trial 1."""
    from mlflow.entities import Metric, RunTag

    from mlflow_sweeper.agent.closing import CloseContext, close_sweep
    from mlflow_sweeper.agent.outcome import Kind, Outcome
    from mlflow_sweeper.agent.settle import Attempt, _announce_complete
    from mlflow_sweeper.agent.trial import TrialContext
    from mlflow_sweeper.record.parent import ParentRun

    session, _ = session_of(tmp_path, monkeypatch, scores(lambda r: 0.0), parameters={"x": [1, 2], "y": [10]})
    parts, study, recorder = session.parts, session.parts.study, session.parts.recorder
    works = [study.claim(), study.claim()]
    runs = []
    for work in works:
        runs.append(recorder.create_trial_run(parts.parent_id, work.number, work.attempt, work.params, {}))
        study.bind_run(work, runs[-1])
        study.launched(work)
        recorder.end_trial_run(runs[-1], "FINISHED")
    study.complete(works[0], 11.0)
    study.complete(works[1], 12.0)
    assert recorder.parent.record_best(parts.parent_id, runs[1], 12.0, step=2)

    class WrittenAfterTheClose(ParentRun):
        """A best write whose read came before the close: the close runs between them."""

        def record_best(self, parent_id, run_id, value, *, step=0, force=False):
            if force:
                return super().record_best(parent_id, run_id, value, step=step, force=force)
            trials, best = study.complete_trials(), study.best_trial()
            assert close_sweep(CloseContext(parts.config, study, recorder, parts.parent_id, trials, best))
            metric = Metric("score", value, int(time.time() * 1000), step)
            self.client.log_batch(parent_id, metrics=[metric], tags=[RunTag(BEST_RUN_TAG, run_id)])
            return True

    recorder.parent = WrittenAfterTheClose(recorder.client, parts.config, recorder.experiment_id)
    settling = TrialContext.of(parts, session.failures).settling
    _announce_complete(settling, Attempt(works[0], runs[0], tmp_path / "log"), Outcome(Kind.COMPLETE, 11.0))
    parent = recorder.client.get_run(parts.parent_id)
    assert parent.data.tags[BEST_RUN_TAG] == runs[1]
    assert parent.data.metrics["score"] == 12.0
