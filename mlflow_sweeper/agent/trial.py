"""One trial, from a claimed point to its settlement, in four steps:

launch (the trial's request built, the launcher creates or adopts the run), await (poll,
timeout, Ctrl-C, early stopping), read (`reading.py`: the run read, the outcome classified and
triaged, its constraints judged) and settle (`settle.py`: Optuna told, the run ended, the point
re-queued when owed, the console told).

A trial gets a `TrialContext`, the parts of the agent it uses, never the session.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..config import SweepConfig
from ..constraints import Judgement
from ..coordination import SweepStudy, Work
from ..devices import NO_DEVICE_POOL, NO_DEVICES, DeviceHold, DevicePool, NoDevicePool
from ..display import shown_params
from ..launch import Launcher, TrialHandle, TrialRequest, trial_log_name
from ..launch.base import text
from ..preflight import CheckedProject
from ..progress import Reporter
from ..pruning import TrialWatch
from ..record import Recorder
from ..resume import trial_variables
from ..trial_log import scrub
from ..ui.live import LiveDescription
from .counts import SweepCounts
from .failures import Failures
from .outcome import NOT_STARTED, Ending, Kind, Outcome, classify
from .parts import SweepParts
from .reading import ResultReader
from .result import SweepResult
from .settle import Attempt, Settling, settle
from .stop import StopSignal
from .triage import trial_tags
from .uploads import LogUploads
from .watch import NoWatch

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a waiting worker checks for Ctrl-C and its timeout


class StopRequested(Exception):
    """Ctrl-C reached this trial: the worker leaves once the trial is settled."""


@dataclass(frozen=True)
class TrialContext:
    """What a trial's execution uses of the agent, built once per session and shared by its trials."""

    config: SweepConfig
    study: SweepStudy
    recorder: Recorder
    parent_id: str
    launcher: Launcher
    console: Reporter
    stop: StopSignal
    counts: SweepCounts
    watch: TrialWatch | NoWatch
    uploads: LogUploads
    failures: Failures
    result: SweepResult  # a launch failure stops the agent through it
    description: LiveDescription  # told of each new best
    devices: DevicePool | NoDevicePool = NO_DEVICE_POOL  # this host's devices, one group per trial
    checked: CheckedProject | None = None  # the entry point's project: its full parameter set is logged

    @classmethod
    def of(cls, parts: SweepParts, failures: Failures) -> TrialContext:
        return cls(
            config=parts.config,
            study=parts.study,
            recorder=parts.recorder,
            parent_id=parts.parent_id,
            launcher=parts.launcher,
            console=parts.console,
            stop=parts.stop,
            counts=parts.counts,
            watch=parts.watch,
            uploads=parts.uploads,
            failures=failures,
            result=parts.result,
            description=parts.description,
            devices=parts.devices,
            checked=parts.checked,
        )

    @cached_property
    def reader(self) -> ResultReader:
        return ResultReader(self.config, self.recorder)

    @property
    def settling(self) -> Settling:
        return Settling(
            self.config,
            self.study,
            self.recorder,
            self.parent_id,
            self.counts,
            self.console,
            self.failures,
            self.description,
        )


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
    """One attempt of one trial."""

    def __init__(self, context: TrialContext, work: Work, devices: DeviceHold = NO_DEVICES):
        self.context = context
        self.work = work
        # Only the parameters that exist for this point: a conditional one whose `when` does not
        # hold is neither passed nor logged.
        self.params = {**work.params, **context.config.space.fixed_for(work.params)}
        self.runs = RecordedRuns(
            context.recorder, context.study, context.parent_id, work, self.params, self._logged_params()
        )
        self.ended_as: str | None = None  # how the training code ended the run, once read
        self.judgement: Judgement | None = None  # the constraints' verdict, with `spec.constraints`
        self.devices = devices  # taken by its worker before it claimed the point; held while it runs

    def _logged_params(self) -> dict | None:
        """The entry point's full parameter set, as its run logs it (None: the params as passed),
        without a conditional parameter that does not exist for this point."""
        checked = self.context.checked
        logged = checked.logged_parameters(self.params) if checked is not None else None
        if logged is None:
            return None
        absent = set(self.context.config.space.absent_from(self.params))
        return {name: value for name, value in logged.items() if name not in absent}

    @property
    def run_id(self) -> str | None:
        return self.runs.run_id

    @property
    def log_path(self) -> Path:
        return self.context.config.log_dir / trial_log_name(self.work.number)

    def run(self) -> None:
        """Launch, await, classify, settle. Raises StopRequested after a Ctrl-C."""
        devices = self.devices
        if self.context.stop.is_set():  # Ctrl-C since the point was claimed: it goes back
            devices.release()
            self.settle(classify(Ending(cancelled=True), None, None))
            raise StopRequested
        if self.context.result.error is not None:  # this agent stopped (fail_fast, an error)
            devices.release()  # since the point was claimed: it goes back unstarted
            self.settle(Outcome(Kind.CANCELLED, reason=NOT_STARTED, run_status="KILLED"))
            raise StopRequested
        # released when the trial has ended (or, by the OS, when the agent and the trial are gone)
        with devices:
            self.runs.extra_tags.update(devices.tags)
            handle = self.launch()
            if handle is None:
                return
            work = self.work
            shown = f" on {devices.env_name}={','.join(devices.ids)}" if devices.ids else ""
            # Optuna numbers every attempt; the budget counts points: a retry is the same point again.
            point = f"point {work.slot + 1} of {self.context.study.budget}, attempt {work.attempt}"
            started = f"{point}, run {self.run_id}{shown}"
            if not self.context.stop.is_set():  # Ctrl-C while it launched: cancelled at once, unannounced
                self.context.console.event(f"trial {work.number} started ({started}): {_fmt(work.params)}")
            ending = self.await_end(handle)
        verdict = self.context.reader.verdict(ending, self.run_id, self.log_path)
        self.ended_as, self.judgement = verdict.ended_as, verdict.judgement
        outcome = verdict.outcome
        self.settle(outcome)
        if outcome.kind is Kind.CANCELLED:
            raise StopRequested

    # ---- launch ----------------------------------------------------------------------------------

    def request(self) -> TrialRequest:
        """What the launcher gets for this attempt: the one place a trial's inputs are built."""
        work = self.work
        revealed = self.context.config.revealed(self.params)
        return TrialRequest(
            number=work.number,
            attempt=work.attempt,
            experiment_id=self.context.recorder.experiment_id,
            params=revealed,
            hidden_values=tuple(text(v) for k, v in revealed.items() if v != self.params.get(k)),
            shown_params=self.params,
            runs=self.runs,
            # the attempt's variables (SWEEPER_TRIAL, ...) and the devices it holds
            env={**trial_variables(work.number, work.attempt, work.replaces_run), **self.devices.environment},
            keep_fds=self.devices.lock_fds,
        )

    def launch(self) -> TrialHandle | None:
        """Start the trial; None when it could not be launched (the agent then stops)."""
        context = self.context
        try:
            handle = context.launcher.launch(self.request())
        except Exception as exc:  # noqa: BLE001 - e.g. a missing entry point parameter
            self._launch_failed(exc)
            return None
        context.stop.track(handle.pid)
        try:
            context.study.launched(self.work)  # while the trial's process starts
        except Exception as exc:  # noqa: BLE001 - written again when the trial ends
            log.warning("trial %s: could not record its launch yet: %s", self.work.number, exc)
        return handle

    def _launch_failed(self, exc: Exception) -> None:
        context, message = self.context, f"trial {self.work.number} could not be launched: {exc}"
        context.result.error = message
        context.recorder.kill_run(self.run_id, "FAILED")
        # Re-queued as it was, so the sweep resumes once the project is fixed.
        context.study.fail(self.work, message, retry_it=True, count_attempt=False, old_run=self.run_id)
        context.console.summary(message)

    # ---- await -----------------------------------------------------------------------------------

    def await_end(self, handle: TrialHandle) -> Ending:
        """Wait for the trial to end, cancelling it on Ctrl-C, when `trial_timeout` passes or when
        the pruner says so. The trial's log is attached to its run however it ended."""
        context = self.context
        timeout = context.config.trial_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        watch, trial_id, run_id = context.watch, self.work.trial_id, self.run_id
        succeeded: bool | None = None
        try:
            while True:
                succeeded = handle.wait(POLL_SECONDS)
                if succeeded is not None:
                    break
                if context.stop.is_set():
                    handle.cancel()
                    return Ending(cancelled=True)
                if deadline is not None and time.monotonic() > deadline:
                    handle.cancel()
                    return Ending(timed_out_after=timeout)
                # Reads the run's metric history once per `interval`; cheap in between. A trial
                # whose code has ended its run FINISHED is exiting with its result: not pruned.
                pruned = run_id and watch.check(trial_id, run_id)
                if pruned and not context.recorder.finished_by_its_code(run_id):
                    handle.cancel()  # the trial's whole process tree
                    return Ending(pruned=True)
        finally:
            handle.close()
            context.stop.untrack(handle.pid)
            if succeeded is None:
                watch.forget(trial_id)
            scrub(self.log_path)  # before the tail, the triage and the upload read it
            context.uploads.attach(self.run_id, str(self.log_path))  # pruned or cancelled ones too
        if run_id:
            watch.finish(trial_id, run_id)  # its last steps, before it completes
        return Ending(succeeded=succeeded, exit_code=handle.returncode)

    # ---- settle ----------------------------------------------------------------------------------

    def settle(self, outcome: Outcome) -> None:
        """Make the outcome true everywhere: Optuna, the MLflow run, the progress, the console."""
        attempt = Attempt(self.work, self.run_id, self.log_path, self.ended_as, self.judgement)
        settle(self.context.settling, attempt, outcome)

    def give_back(self, reason: str) -> None:
        """An unexpected error in the agent: end the run, re-queue the point as it was."""
        context, work = self.context, self.work
        try:
            context.recorder.kill_run(work.run_id, "FAILED")
            context.study.fail(work, reason, retry_it=True, count_attempt=False, old_run=work.run_id)
        except Exception as exc:  # noqa: BLE001 - the next agent's reclaim gives it back
            log.warning("could not give trial %s back: %s: %s", work.number, type(exc).__name__, exc)
            log.debug("giving trial %s back failed", work.number, exc_info=True)


def _fmt(params: dict) -> str:
    return shown_params(params)
