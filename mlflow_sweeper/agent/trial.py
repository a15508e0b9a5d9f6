"""One trial, from a claimed point to its settlement, in four steps:

launch (the launcher creates or adopts the run), await (poll, timeout, Ctrl-C), classify (a pure
function, `outcome.classify`) and settle (Optuna told, the run ended, the point re-queued when
owed, the console told).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..coordination import SweepStudy, Work
from ..launch import TrialHandle, TrialRequest, trial_log_name
from ..record import Recorder
from ..resume import trial_variables
from ..trial_log import indented_tail
from .outcome import Ending, Kind, Outcome, classify, needs_metric
from .triage import devices_of, triage, trial_tags

if TYPE_CHECKING:
    from .session import SweepSession

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a waiting worker checks for Ctrl-C and its timeout


class StopRequested(Exception):
    """Ctrl-C reached this trial: the worker leaves once the trial is settled."""


class RecordedRuns:
    """The launch's way to bring the trial's run into being, tied at once to the Optuna trial.

    Remembers the run id, so a launch that fails after the run exists still ends that run.
    """

    def __init__(
        self,
        recorder: Recorder,
        study: SweepStudy,
        parent_id: str,
        work: Work,
        params: dict,
        logged: dict | None = None,
    ):
        self.recorder = recorder
        self.study = study
        self.parent_id = parent_id
        self.work = work
        self.params = logged if logged is not None else params  # what the run records
        self.run_id: str | None = None
        self.extra_tags: dict[str, str] = trial_tags(work)  # the earlier attempt, the devices

    def create(self, tags: dict[str, str]) -> str:
        work = self.work
        tags = {**tags, **self.extra_tags}
        run_id = self.recorder.create_trial_run(self.parent_id, work.number, work.attempt, self.params, tags)
        self._bind(run_id)
        return run_id

    def adopt(self, run_id: str) -> None:
        self.run_id = run_id
        work = self.work
        self.recorder.adopt_run(
            run_id, self.parent_id, work.number, work.attempt, self.params, self.extra_tags
        )
        self._bind(run_id)

    def _bind(self, run_id: str) -> None:
        self.run_id = run_id
        self.study.bind_run(self.work, run_id)
        if self.work.replaces_run:
            self.recorder.replace_run(self.work.replaces_run, run_id)


class TrialExecution:
    """One attempt of one trial, run by a worker of a `SweepSession`."""

    def __init__(self, session: SweepSession, work: Work):
        self.session = session
        self.work = work
        # Only the parameters that exist for this point: a conditional one whose `when` does not
        # hold is neither passed nor logged.
        self.params = {**work.params, **session.config.space.fixed_for(work.params)}
        checked = getattr(session, "checked", None)  # the entry point's full parameter set is logged
        logged = checked.logged_parameters(self.params) if checked is not None else None
        if logged is not None:  # a conditional parameter that does not exist here is not logged
            absent = set(session.config.space.conditional_names()) - set(self.params)
            logged = {name: value for name, value in logged.items() if name not in absent}
        self.runs = RecordedRuns(
            session.recorder, session.study, session.parent_id, work, self.params, logged
        )
        self.ended_as: str | None = None  # how the training code ended the run, once read
        self.logged_metrics: tuple[str, ...] = ()  # every metric the run logged, once read

    @property
    def run_id(self) -> str | None:
        return self.runs.run_id

    @property
    def log_path(self) -> Path:
        return self.session.log_dir / trial_log_name(self.work.number)

    def run(self) -> None:
        """Launch, await, classify, settle. Raises StopRequested after a Ctrl-C."""
        stop = self.session.agent.stop
        devices = None if stop.is_set() else devices_of(self.session).acquire(stop)
        if devices is None:  # Ctrl-C, before or while waiting for devices
            self.settle(classify(Ending(cancelled=True), None, None))
            raise StopRequested
        with devices:  # released when the trial has ended (or, by the OS, when the agent dies)
            self.runs.extra_tags.update(devices.tags)
            handle = self.launch(devices.environment)
            if handle is None:
                return
            work = self.work
            shown = f" on {devices.env_name}={','.join(devices.ids)}" if devices.ids else ""
            started = f"run {self.run_id}{_attempt(work)}{shown}"
            self.session.report(f"trial {work.number} started ({started}): {_fmt(work.params)}")
            ending = self.await_end(handle)
        outcome = triage(
            classify(ending, self.objective_names, self.read_objective(ending)),
            ending,
            self.log_path,
            self.session.config,
            self.objective_names,
            self.logged_metrics,
        )
        self.settle(outcome)
        if outcome.kind is Kind.CANCELLED:
            raise StopRequested

    # ---- launch ----------------------------------------------------------------------------------

    def launch(self, devices_env: dict[str, str] | None = None) -> TrialHandle | None:
        """Start the trial; None when it could not be launched (the agent then stops)."""
        session = self.session
        work = self.work
        request = TrialRequest(
            number=work.number,
            attempt=work.attempt,
            experiment_id=session.recorder.experiment_id,
            params=self.params,
            runs=self.runs,
            env={**trial_variables(work.number, work.attempt, work.replaces_run), **(devices_env or {})},
        )
        try:
            handle = session.launcher.launch(request)
        except Exception as exc:  # noqa: BLE001 - e.g. a missing entry point parameter
            self._launch_failed(exc)
            return None
        if handle.pid is not None:
            session.agent.trial_pids.add(handle.pid)
        try:
            session.study.launched(self.work)  # while the trial's process starts
        except Exception as exc:  # noqa: BLE001 - written again when the trial ends
            log.warning("trial %s: could not record its launch yet: %s", self.work.number, exc)
        return handle

    def _launch_failed(self, exc: Exception) -> None:
        message = f"trial {self.work.number} could not be launched: {exc}"
        self.session.result.error = message
        self.session.recorder.kill_run(self.run_id, "FAILED")
        # Re-queued as it was, so the sweep resumes once the project is fixed.
        self.session.study.fail(self.work, message, retry_it=True, count_attempt=False, old_run=self.run_id)
        self.session.report_stop(message)

    # ---- await -----------------------------------------------------------------------------------

    def await_end(self, handle: TrialHandle) -> Ending:
        """Wait for the trial to end, cancelling it on Ctrl-C or when `trial_timeout` passes. The
        trial's log is attached to its run when the trial ended by itself."""
        agent = self.session.agent
        timeout = self.session.config.trial_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        watch = watch_of(self.session)
        trial_id, run_id = self.work.trial_id, self.run_id
        succeeded: bool | None = None
        try:
            while True:
                succeeded = handle.wait(POLL_SECONDS)
                if succeeded is not None:
                    break
                if agent.stop.is_set():
                    handle.cancel()
                    return Ending(cancelled=True)
                if deadline is not None and time.monotonic() > deadline:
                    handle.cancel()
                    return Ending(timed_out_after=timeout)
                # Reads the run's metric history once per `interval`; cheap in between.
                if watch is not None and run_id and watch.check(trial_id, run_id):
                    handle.cancel()  # the trial's whole process tree
                    return Ending(pruned=True)
        finally:
            handle.close()
            agent.trial_pids.discard(handle.pid)
            if watch is not None and succeeded is None:
                watch.forget(trial_id)
        if watch is not None and run_id:
            watch.finish(trial_id, run_id)  # its last steps, before it completes
        self.session.uploads.attach(self.run_id, str(self.log_path))
        return Ending(succeeded=succeeded, exit_code=handle.returncode)

    @property
    def objective_names(self) -> str | tuple[str, ...] | None:
        """The objective's metric, or the tuple of them with several objectives."""
        objective = self.session.config.objective
        return objective.names if objective.multi else objective.metric

    def read_objective(self, ending: Ending) -> float | dict[str, float | None] | None:
        """The objective's value (or values) from the run, read only for a trial that succeeded:
        one read of the run, however many objectives, which also tells whether the training code
        ended the run itself."""
        names = self.objective_names
        if not needs_metric(ending, names):
            return None
        reading = self.session.recorder.read_run(self.run_id, names if isinstance(names, tuple) else (names,))
        self.ended_as = reading.ended_as
        self.logged_metrics = reading.logged
        return reading.metrics if isinstance(names, tuple) else reading.metrics[names]

    # ---- settle ----------------------------------------------------------------------------------

    def settle(self, outcome: Outcome) -> None:
        """Make the outcome true everywhere: Optuna, the MLflow run, the progress, the console."""
        if outcome.kind is Kind.COMPLETE:
            self._settle_complete(outcome)
        elif outcome.kind is Kind.PRUNED:
            self._settle_pruned(outcome)
        elif outcome.kind is Kind.CANCELLED:
            self._settle_cancelled(outcome)
        elif outcome.kind is Kind.INFEASIBLE:
            self._settle_infeasible(outcome)
        elif outcome.kind is Kind.SETUP:
            self._settle_setup(outcome)
        else:
            self._settle_failed(outcome)

    def _settle_complete(self, outcome: Outcome) -> None:
        session, run_id, value = self.session, self.run_id, outcome.value
        session.recorder.end_trial_run(run_id, outcome.run_status, ended_as=self.ended_as)
        session.study.complete(self.work, value)
        if isinstance(value, list):  # several objectives: no single best to show or record
            session.counts.done(None)
            self._keep_front()
            shown = ", ".join(
                f"{n}={v:.6g}" for n, v in zip(session.config.objective.names, value, strict=True)
            )
            session.report(f"trial {self.work.number} finished (run {run_id}, {shown})")
            return
        improved = session.counts.done(value)
        shown = "" if value is None else f", {session.config.objective.metric}={value:.6g}"
        session.report(f"trial {self.work.number} finished (run {run_id}{shown})")
        if improved:  # only then can it beat what the parent shows
            session.recorder.record_best(session.parent_id, run_id, value)
        if session.config.objective.reached(value):
            session.report(f"trial {self.work.number} reached the target: no new trials will start")

    def _settle_failed(self, outcome: Outcome) -> None:
        session, run_id = self.session, self.run_id
        session.recorder.end_trial_run(run_id, outcome.run_status)
        requeued = session.study.fail(self.work, outcome.reason, retry_it=outcome.retry, old_run=run_id)
        if not requeued:
            session.counts.failed()
        then = "will be retried" if requeued else "failed for good" if outcome.retry else "not retried"
        log_hint = f"; log: {self.log_path}" if self.log_path.exists() else ""  # backends log elsewhere
        session.report(f"trial {self.work.number} failed (run {run_id}): {outcome.reason}; {then}{log_hint}")
        session.trial_failed(self)

    def _settle_infeasible(self, outcome: Outcome) -> None:
        """The point cannot run (out of memory, a non-finite objective): run FAILED and tagged
        `sweeper.infeasible`, Optuna FAIL marked infeasible, never retried; counted in the budget
        and by `fail_fast`, but not a failure for the agent's exit code."""
        session, run_id = self.session, self.run_id
        if run_id:
            session.recorder.tag_infeasible(run_id, outcome.reason or "infeasible")
            session.recorder.end_trial_run(run_id, outcome.run_status)
        session.study.mark_infeasible(self.work, outcome.reason or "infeasible")
        session.study.fail(self.work, outcome.reason or "infeasible", retry_it=False, old_run=run_id)
        session.counts.failed()
        session.report(f"trial {self.work.number} infeasible (run {run_id}): {outcome.reason}; not retried")
        session.trial_failed(self)

    def _settle_setup(self, outcome: Outcome) -> None:
        """The setup is broken (a usage error): every trial would fail alike. The sweep stops as
        `fail_fast` stops it: the point keeps its attempts for the resume, the agent exits 1."""
        session, run_id = self.session, self.run_id
        message = (
            f"{session.config.identity}: trial {self.work.number} (run {run_id}): {outcome.reason}; "
            "the sweep stops: fix the command or the parameters, then run again to resume"
        )
        if session.result.error is None:
            session.result.error = message  # before the point is queued again: no worker takes it
        session.recorder.end_trial_run(run_id, outcome.run_status)
        reason = outcome.reason or "usage error"
        session.study.fail(self.work, reason, retry_it=True, count_attempt=False, old_run=run_id)
        tail = indented_tail(self.log_path)
        if tail:
            session.report(f"trial {self.work.number}: last lines of {self.log_path}:\n{tail}")
        session.report_stop(message)

    def _keep_front(self) -> None:
        """Several objectives: tag this run `sweeper.pareto` when it is on the front so far and
        untag the runs it pushed off, so the tags are right mid-sweep too (the close recomputes
        the whole front, and the parent's list, whatever happened here)."""
        from ..coordination.identity import directions_of
        from ..coordination.tallies import front_change

        session = self.session
        try:
            on_front, pushed = front_change(
                session.study.trials(), self.work.number, directions_of(session.config)
            )
            session.recorder.update_pareto(
                self.run_id if on_front else None,
                [t.user_attrs["mlflow_run_id"] for t in pushed if t.user_attrs.get("mlflow_run_id")],
            )
        except Exception as exc:  # noqa: BLE001 - the tags are a courtesy until the close
            log.debug("could not update the Pareto tags: %s", exc)

    def _settle_pruned(self, outcome: Outcome) -> None:
        """Run KILLED and tagged `sweeper.pruned`; Optuna PRUNED; counted in the budget, never retried."""
        session, run_id = self.session, self.run_id
        if run_id:
            session.recorder.tag_pruned(run_id)
            session.recorder.end_trial_run(run_id, outcome.run_status)
        session.study.prune(self.work)
        session.counts.pruned()
        session.report(f"trial {self.work.number} pruned (run {run_id}): {outcome.reason}")

    def _settle_cancelled(self, outcome: Outcome) -> None:
        """The run is KILLED, the point re-queued without counting an attempt."""
        session, run_id = self.session, self.run_id
        if run_id:
            session.recorder.end_trial_run(run_id, outcome.run_status)
        session.study.fail(self.work, outcome.reason, retry_it=True, count_attempt=False, old_run=run_id)
        session.report(f"trial {self.work.number} cancelled (run {run_id})")

    def give_back(self, reason: str) -> None:
        """An unexpected error in the agent: end the run, re-queue the point as it was."""
        try:
            self.session.recorder.kill_run(self.work.run_id, "FAILED")
            self.session.study.fail(
                self.work, reason, retry_it=True, count_attempt=False, old_run=self.work.run_id
            )
        except Exception as exc:  # noqa: BLE001 - the next agent's reclaim gives it back
            log.warning("could not give trial %s back: %s: %s", self.work.number, type(exc).__name__, exc)
            log.debug("giving trial %s back failed", self.work.number, exc_info=True)


_WATCH_LOCK = threading.Lock()


def watch_of(session: SweepSession):
    """The session's TrialWatch (one per agent and sweep, shared by its workers), or None
    without `early_stopping`. It needs only run ids and the shared Optuna storage, so it works
    for every backend and compares against the trials of every agent."""
    early_stopping = session.config.early_stopping
    if early_stopping is None:
        return None
    with _WATCH_LOCK:
        watch = getattr(session, "trial_watch", None)
        if watch is None:
            from ..pruning import TrialWatch

            watch = TrialWatch(
                session.recorder.client,
                session.study.storage,
                session.config.identity,
                session.config.objective.metric,
                early_stopping,
            )
            session.trial_watch = watch
        return watch


def _attempt(work: Work) -> str:
    return f", attempt {work.attempt}" if work.attempt > 1 else ""


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
