"""The pure decision of how a trial ended: every branch of `classify`."""

from __future__ import annotations

import math

import pytest

from mlflow_sweeper.agent.outcome import Ending, Kind, Outcome, classify, needs_metric


def test_cancelled_wins_over_everything_and_kills_the_run():
    outcome = classify(Ending(cancelled=True, timed_out_after=5.0), "score", 1.0)
    assert outcome == Outcome(Kind.CANCELLED, reason="interrupted (Ctrl-C or SIGTERM)", run_status="KILLED")


def test_timeout_fails_the_trial_with_a_killed_run():
    outcome = classify(Ending(timed_out_after=2.5), "score", None)
    assert outcome.kind is Kind.FAILED
    assert outcome.run_status == "KILLED"
    assert outcome.reason == "timed out after 2.5 s (trial_timeout)"


def test_a_failed_process_reports_its_exit_code():
    outcome = classify(Ending(succeeded=False, exit_code=3), "score", None)
    assert outcome == Outcome(Kind.FAILED, reason="the run failed (exit code 3)", run_status="FAILED")


def test_a_failed_backend_run_has_no_exit_code():
    outcome = classify(Ending(succeeded=False), "score", None)
    assert outcome == Outcome(Kind.FAILED, reason="the run failed", run_status="FAILED")


def test_no_objective_completes_on_success_without_a_value():
    outcome = classify(Ending(succeeded=True, exit_code=0), None, None)
    assert outcome == Outcome(Kind.COMPLETE)
    assert outcome.complete and outcome.run_status == "FINISHED"


def test_a_missing_metric_fails_the_trial():
    outcome = classify(Ending(succeeded=True, exit_code=0), "score", None)
    assert outcome == Outcome(
        Kind.FAILED, reason="the run did not log the metric 'score'", run_status="FAILED"
    )


def test_a_nan_metric_fails_the_trial():
    outcome = classify(Ending(succeeded=True, exit_code=0), "score", math.nan)
    assert outcome.kind is Kind.FAILED
    assert outcome.reason == "the metric 'score' is NaN"


@pytest.mark.parametrize("value", [0.0, -1.5, 42.0])
def test_a_logged_metric_completes_the_trial_with_its_value(value):
    outcome = classify(Ending(succeeded=True, exit_code=0), "score", value)
    assert outcome == Outcome(Kind.COMPLETE, value=value)


@pytest.mark.parametrize(
    ("ending", "metric", "expected"),
    [
        (Ending(succeeded=True), "score", True),
        (Ending(succeeded=True), None, False),
        (Ending(succeeded=False, exit_code=1), "score", True),  # a NaN objective: infeasible
        (Ending(succeeded=False, exit_code=1), None, False),
        (Ending(succeeded=False, exit_code=-9), "score", False),  # killed: what it logged says nothing
        (Ending(timed_out_after=1.0), "score", False),
        (Ending(cancelled=True), "score", False),
        (Ending(pruned=True), "score", False),
    ],
)
def test_the_metric_is_read_only_for_a_trial_that_ended_by_itself_with_an_objective(ending, metric, expected):
    assert needs_metric(ending, metric) is expected
