"""Settling a trial's outcome: making it true everywhere (Optuna, the trial's MLflow run, the
counts, the console), one function per kind of outcome in `SETTLERS`.

A new kind of outcome is one `Kind` (in `outcome.py`), one function here and one row."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import SweepConfig
from ..constraints import FEASIBLE_TAG, Judgement, feasible_text, trial_attrs
from ..coordination import SweepStudy, Work, tallies
from ..coordination.identity import directions_of
from ..coordination.tallies import front_change
from ..display import shown_value
from ..progress import Reporter
from ..record import Recorder
from ..ui.live import LiveDescription
from .closing import record_sweep_best
from .counts import SweepCounts
from .failures import Failures
from .outcome import Kind, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settling:
    """What settling a trial's outcome may touch."""

    config: SweepConfig
    study: SweepStudy
    recorder: Recorder
    parent_id: str
    counts: SweepCounts
    console: Reporter
    failures: Failures
    description: LiveDescription  # told of each new best


@dataclass(frozen=True)
class Attempt:
    """The attempt being settled."""

    work: Work
    run_id: str | None
    log_path: Path
    ended_as: str | None = None  # how the training code ended the run, when it was read
    judgement: Judgement | None = None  # the constraints' verdict, with `spec.constraints`


def settle(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    SETTLERS[outcome.kind](parts, attempt, outcome)


def settle_complete(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    _end_complete_run(parts, attempt, outcome)
    judgement = attempt.judgement
    parts.study.complete(attempt.work, outcome.value, trial_attrs(judgement) if judgement else None)
    _announce_complete(parts, attempt, outcome)


def settle_adopted(parts: Settling, attempt: Attempt, outcome: Outcome, why: str) -> bool:
    """A dead agent's trial whose run had finished (a complete outcome; `why`: why its agent
    counts as gone): settled as if its agent had lived, when this agent wins the trial's
    RUNNING -> COMPLETE update; False when another agent ended the trial first."""
    judgement = attempt.judgement
    if not parts.study.adopt(attempt.work, outcome.value, trial_attrs(judgement) if judgement else None):
        return False
    parts.console.event(
        f"trial {attempt.work.number} adopted: {why}; its run had finished: its result is kept, not run again"
    )
    _end_complete_run(parts, attempt, outcome)
    _announce_complete(parts, attempt, outcome)
    return True


def _end_complete_run(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    run_id, judgement = attempt.run_id, attempt.judgement
    parts.recorder.end_trial_run(run_id, outcome.run_status, ended_as=attempt.ended_as)
    if judgement is not None and run_id:
        parts.recorder.client.set_tag(run_id, FEASIBLE_TAG, feasible_text(judgement.feasible))


def _announce_complete(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    """A completed trial counted, said, and, when it is a new best, shown on the parent."""
    work, run_id, value = attempt.work, attempt.run_id, outcome.value
    objective, judgement = parts.config.objective, attempt.judgement
    violated = ""
    if judgement is not None and not judgement.feasible:
        violated = f", not feasible: violates {', '.join(judgement.violated)}"
    if isinstance(value, list):  # several objectives: no single best to show or record
        parts.counts.done(None)
        _keep_front(parts, attempt)
        shown = ", ".join(f"{n}={shown_value(v)}" for n, v in zip(objective.names, value, strict=True))
        parts.console.event(f"trial {work.number} finished (run {run_id}, {shown}{violated})")
        return
    shown = "" if value is None else f", {objective.metric}={shown_value(value)}"
    if violated:  # an infeasible value is never the best, nor the target
        parts.counts.done(None)
        parts.console.event(f"trial {work.number} finished (run {run_id}{shown}{violated})")
        return
    improved = parts.counts.done(value)
    parts.console.event(f"trial {work.number} finished (run {run_id}{shown})")
    if improved:  # only then can it beat what the parent shows: a new point of the best-so-far curve
        step = tallies.best_so_far_step(parts.study.trials(), work.number, parts.study.direction)
        # step None: another agent's trial, ended before it, was as good
        if step is not None and parts.recorder.parent.record_best(parts.parent_id, run_id, value, step=step):
            _keep_the_sweeps_best(parts)
        parts.description.new_best()
    if objective.reached(value):
        parts.console.event(f"trial {work.number} reached the target: no new trials will start")


def _keep_the_sweeps_best(parts: Settling) -> None:
    """A trial is told to Optuna before its best is written, so a close may begin in between and
    write the sweep's best first; a better trial's agent may also have written first. Once a close
    has begun, the write just made is put right: the sweep's best goes back on the parent."""
    if parts.study.close_begun():
        record_sweep_best(parts.recorder, parts.parent_id, parts.study.trials(), parts.study.best_trial())


def settle_failed(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    work, run_id = attempt.work, attempt.run_id
    parts.recorder.end_trial_run(run_id, outcome.run_status)
    requeued = parts.study.fail(work, outcome.reason, retry_it=outcome.retry, old_run=run_id)
    if not requeued:
        parts.counts.failed()
    then = "will be retried" if requeued else "failed for good" if outcome.retry else "not retried"
    if not requeued and parts.failures.fail_fast_armed:  # a fail_fast stop would queue it again
        then = "no retries left" if outcome.retry else "not retried"
        then += " (it runs again on resume if fail_fast stops the sweep)"
    log_hint = f"; log: {attempt.log_path}" if attempt.log_path.exists() else ""  # backends log elsewhere
    parts.console.event(f"trial {work.number} failed (run {run_id}): {outcome.reason}; {then}{log_hint}")
    parts.failures.after_failure(work, attempt.log_path)


def settle_pruned(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    """Run KILLED and tagged `sweeper.pruned`; Optuna PRUNED; counted in the budget, never retried."""
    run_id = attempt.run_id
    if run_id:
        parts.recorder.tag_pruned(run_id)
        parts.recorder.end_trial_run(run_id, outcome.run_status)
    parts.study.prune(attempt.work)
    parts.counts.pruned()
    parts.console.event(f"trial {attempt.work.number} pruned (run {run_id}): {outcome.reason}")


def settle_cancelled(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    """The run is KILLED, the point re-queued without counting an attempt."""
    run_id = attempt.run_id
    if run_id:
        parts.recorder.end_trial_run(run_id, outcome.run_status)
    parts.study.fail(attempt.work, outcome.reason, retry_it=True, count_attempt=False, old_run=run_id)
    if run_id:
        parts.console.event(f"trial {attempt.work.number} cancelled (run {run_id})")


def settle_infeasible(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    """The point cannot run (out of memory, a non-finite objective): run FAILED and tagged
    `sweeper.infeasible`, Optuna FAIL marked infeasible, never retried; counted in the budget
    and by `fail_fast`, but not a failure for the agent's exit code."""
    work, run_id, reason = attempt.work, attempt.run_id, outcome.reason or "infeasible"
    why = outcome.infeasible_why
    if run_id:
        parts.recorder.tag_infeasible(run_id, why)
        parts.recorder.end_trial_run(run_id, outcome.run_status)
    parts.study.mark_infeasible(work, why)
    parts.study.fail(work, reason, retry_it=False, old_run=run_id)  # `fail_reason`: says infeasible
    parts.counts.failed()
    parts.console.event(f"trial {work.number} infeasible (run {run_id}): {why}; not retried")
    parts.failures.after_failure(work, attempt.log_path)


def settle_setup(parts: Settling, attempt: Attempt, outcome: Outcome) -> None:
    """The setup is broken (a usage error): every trial would fail alike. The sweep stops as
    `fail_fast` stops it: the point keeps its attempts for the resume, the agent exits 1."""
    work, run_id = attempt.work, attempt.run_id
    message = (
        f"{parts.config.identity}: trial {work.number} (run {run_id}): {outcome.reason}; "
        "the sweep stops: fix the command or the parameters, then run again to resume"
    )
    parts.failures.stop_sweep(message)  # before the point is queued again: no worker takes it
    parts.recorder.end_trial_run(run_id, outcome.run_status)
    reason = outcome.reason or "usage error"
    parts.study.fail(work, reason, retry_it=True, count_attempt=False, old_run=run_id)
    parts.failures.show_tail(work, attempt.log_path)
    parts.console.summary(message)


SETTLERS: dict[Kind, Callable[[Settling, Attempt, Outcome], None]] = {
    Kind.COMPLETE: settle_complete,
    Kind.FAILED: settle_failed,
    Kind.PRUNED: settle_pruned,
    Kind.CANCELLED: settle_cancelled,
    Kind.INFEASIBLE: settle_infeasible,
    Kind.SETUP: settle_setup,
}


def _keep_front(parts: Settling, attempt: Attempt) -> None:
    """Several objectives: tag this run `sweeper.pareto` when it is on the front so far and
    untag the runs it pushed off, so the tags are right mid-sweep too (the close recomputes
    the whole front, and the parent's list, whatever happened here)."""
    try:
        on_front, pushed = front_change(
            parts.study.trials(), attempt.work.number, directions_of(parts.config)
        )
        parts.recorder.parent.update_pareto(
            attempt.run_id if on_front else None,
            [run_id for run_id in map(tallies.own_run_id, pushed) if run_id],
        )
    except Exception as exc:  # noqa: BLE001 - the tags are a courtesy until the close
        log.debug("could not update the Pareto tags: %s", exc)
