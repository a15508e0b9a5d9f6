"""One agent working on one sweep: its workers, its end, and the close of the sweep.

`SweepSession.open` (built in `opening.py`: both storages probed, the study found or created,
the parent run, the launcher) returns a ready object; `run` starts `n_jobs` workers that claim
trials and run each as a `TrialExecution`, and a maintenance thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from ..config import SweepConfig
from ..coordination import RUN_ATTR, SweepStudy, Work
from ..coordination.names import SLOT
from ..launch import Launcher
from ..progress import SweepProgress
from ..record import Recorder
from ..trial_log import indented_tail
from .closing import CloseContext, close_sweep
from .counts import SweepCounts
from .fail_fast import fail_fast_reason
from .idle import IdleBackoff
from .maintenance import maintain, requeue_lost
from .result import SweepResult, describe_failures
from .trial import StopRequested, TrialExecution
from .uploads import LogUploads

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from ..preflight import CheckedProject
    from .process import Agent

log = logging.getLogger(__name__)


class SweepSession:
    """One agent on one sweep. Build it with `SweepSession.open`."""

    def __init__(
        self,
        agent: Agent,
        config: SweepConfig,
        study: SweepStudy,
        recorder: Recorder,
        parent_id: str,
        launcher: Launcher,
        progress: SweepProgress,
    ):
        self.agent = agent
        self.config = config
        self.study = study
        self.recorder = recorder
        self.parent_id = parent_id
        self.launcher = launcher
        self.progress = progress
        self.log_dir: Path = config.log_dir
        self.result = SweepResult(config.identity)
        self.counts = SweepCounts(progress, single_objective=not config.objective.multi)
        self.running: dict[int, TrialExecution] = {}  # by Optuna trial id
        self.lock = threading.Lock()  # guards `running`
        self.done = threading.Event()  # set when the workers are gone: maintenance stops
        self.checked: CheckedProject | None = None  # the entry point's project, as checked
        self.idle = IdleBackoff()  # idle workers look for work in turn, less often over time
        self.uploads = LogUploads(recorder)  # trial logs, attached to their runs in the background

    @classmethod
    def open(cls, agent: Agent, config: SweepConfig, checked: CheckedProject | None = None) -> SweepSession:
        """Probe both storages, find or create the study and its parent run, check for drift."""
        from .opening import open_session

        return open_session(cls, agent, config, checked)

    # ---- the session -----------------------------------------------------------------------------

    def report(self, message: str) -> None:
        self.agent.reporter.event(message)

    def report_stop(self, message: str) -> None:
        """Why this agent stops early: `--quiet` prints it too, as it prints the summary."""
        self.agent.reporter.summary(message)

    def run(self) -> SweepResult:
        if self.agent.retry_failed:
            self._retry_failed()
        if self.study.is_finished() and not requeue_lost(self):
            self.report(f"{self.config.identity}: already complete, nothing to run")
            return self.finish()
        if self.study.is_closed():
            self.study.reopen()  # more to run (a raised budget or retries): a new close is owed
        self.recorder.set_parent_status(self.parent_id, finished=False)
        budget = self.study.budget
        trials = f"{budget} trial{'' if budget == 1 else 's'}"
        self.agent.reporter.event(
            f"{self.config.identity}: parent run {self.parent_id}, {trials} in the budget, "
            f"{self.progress.done} done, up to {self.agent.n_jobs} at once",
            summary=False,  # --quiet prints only the summary
        )
        self._note_ignored_max_trials()
        for note in self.study.source.strategy.notes():
            self.report(f"{self.config.identity}: {note}")
        self.agent.reporter.start(self.progress)
        maintenance = threading.Thread(target=maintain, args=(self,), daemon=True, name="maintenance")
        maintenance.start()
        try:
            while True:
                self._run_workers()
                if self.agent.stop.is_set() or self.result.error or not requeue_lost(self):
                    break
        finally:
            self.done.set()
            self.uploads.drain()
            maintenance.join(timeout=5)
            self.refresh_progress()  # other agents' last trials too, before the bar's last draw
            self.agent.reporter.stop()
        if self.agent.stop.is_set():
            self.result.interrupted = True
            self.report(f"{self.config.identity}: interrupted; run the same command again to resume")
            return self.result
        if self.result.error:
            return self.result
        return self.finish()

    def _note_ignored_max_trials(self) -> None:
        """An algorithm with a fixed plan (sensitivity) runs all of it, whatever `max_trials` says."""
        given, budget = self.config.max_trials, self.study.budget
        if self.study.source.strategy.derived_budget and given is not None and given != budget:
            self.report(
                f"{self.config.identity}: max_trials ({given}) does not apply to algorithm "
                f"{self.config.algorithm!r}: its budget, {budget}, follows from the parameters"
            )

    def _run_workers(self) -> None:
        workers = [
            threading.Thread(target=self._worker, daemon=True, name=f"worker-{i}")
            for i in range(self.agent.n_jobs)
        ]
        self.agent.workers_active = True  # Ctrl-C now cancels trials cleanly
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    worker.join(timeout=0.2)
        finally:
            self.agent.workers_active = False

    def _retry_failed(self) -> None:
        """`--retry-failed`: every point that failed for good is queued again with a fresh set of
        attempts, under the same parent (which is RUNNING again until they end)."""
        failed = self._requeue_failed_for_good()
        if failed:
            numbers = ", ".join(str(t.number) for t in failed)
            self.report(f"{self.config.identity}: retrying {len(failed)} failed point(s) (trials {numbers})")

    def _requeue_failed_for_good(self) -> list[FrozenTrial]:
        """Queue every point that failed for good again, attempt 1; the failed trials."""
        owed = self.study.failed_for_good(self.study.trials(), infeasible=False)  # not infeasible ones
        failed = [t for t in owed if t.state == TrialState.FAIL]
        for trial in failed:
            slot, old_run = int(trial.system_attrs[SLOT]), trial.user_attrs.get(RUN_ATTR)
            self.study.requeue(dict(trial.params), slot, 1, old_run)
        if failed:
            self.counts.failed_again_owed(len(failed))
        return failed

    # ---- workers ---------------------------------------------------------------------------------

    def _worker(self) -> None:
        while not self.agent.stop.is_set() and self.result.error is None:
            if not self.agent.reserve_start():
                return
            work = self._claim()
            if work is None:
                self.agent.release_start()
                if self.result.error or (self.study.slots_exhausted() and not self.study.has_active()):
                    return
                if self.idle.wait(self.agent.stop):
                    return
                continue
            self.idle.reset()
            if not self._execute(TrialExecution(self, work)):
                return
            self._close_if_last()

    def _claim(self) -> Work | None:
        try:
            return self.study.claim()
        except Exception as exc:  # noqa: BLE001 - a storage failing for good: stop, exit 1
            log.debug("claim failed", exc_info=True)
            if self._stop_if_deleted():
                return None
            self.result.error = f"could not claim a trial: {type(exc).__name__}: {exc}"
            self.report_stop(f"{self.result.error}; stopping this agent")
            return None

    def _stop_if_deleted(self) -> bool:
        """After an error: True, the agent told and stopping, when the sweep's study is gone
        (`delete` ran while this agent worked); nothing is left to give back to."""
        try:
            gone = not self.study.still_exists()
        except Exception:  # noqa: BLE001 - the storage itself failing: not a deletion
            return False
        if gone and self.result.error is None:
            self.result.error = f"{self.config.identity}: the sweep was deleted while this agent ran it"
            self.report_stop(f"{self.result.error}; stopping this agent")
        return gone

    def _execute(self, trial: TrialExecution) -> bool:
        """Run one trial; False when this worker must stop (Ctrl-C, or an error in the agent)."""
        with self.lock:
            self.running[trial.work.trial_id] = trial
            self.counts.running_here(len(self.running))
        try:
            trial.run()
        except StopRequested:
            return False
        except Exception as exc:  # noqa: BLE001 - stop this agent, keep the sweep resumable
            log.debug("trial %s: unexpected error", trial.work.number, exc_info=True)
            if self._stop_if_deleted():
                return False
            self.result.error = f"trial {trial.work.number}: {type(exc).__name__}: {exc}"
            self.report_stop(f"{self.result.error}; stopping this agent (the trial is re-queued)")
            trial.give_back(f"agent error: {exc}")
            return False
        finally:
            with self.lock:
                self.running.pop(trial.work.trial_id, None)
                self.counts.running_here(len(self.running))
        return True

    def refresh_progress(self) -> None:
        """Every agent's counts on the bar (`SweepCounts.sync`), a failed read left for the next
        one: the counts are shown, not relied on."""
        try:
            self.counts.sync(self.study.progress)
        except Exception as exc:  # noqa: BLE001
            log.debug("could not read the sweep's progress: %s", exc)

    def running_trial_ids(self) -> set[int]:
        with self.lock:
            return set(self.running)

    def trial_failed(self, trial: TrialExecution) -> None:
        """After a failed attempt: the log's tail on the console on the point's first failure (once
        per failing point, however many retries follow), then the `fail_fast` check."""
        if trial.work.attempt == 1:
            tail = indented_tail(trial.log_path)
            if tail:
                self.report(f"trial {trial.work.number}: last lines of {trial.log_path}:\n{tail}")
        if self.config.fail_fast <= 0 or self.progress.done > 0:
            return  # off, or a trial has completed: fail_fast can no longer fire, skip the read
        stop = fail_fast_reason(self.study.trials(), self.config.fail_fast)
        if not stop:
            return
        # Nothing has worked yet: the points failed so far keep their attempts for the resume,
        # and so does a point whose last attempt was still running when this agent stopped.
        self._requeue_failed_for_good()
        if self.result.error is None:
            self.result.error = f"{self.config.identity}: {stop}"
            self.report_stop(self.result.error)

    # ---- the end of the sweep --------------------------------------------------------------------

    def _close_if_last(self) -> None:
        """After each trial: whichever agent ends the last trial closes the sweep (if elected)."""
        if not self.study.exhausted_seen:
            return  # slots are left: not the last trial
        try:
            trials = self.study.complete_trials()
            if trials is not None:
                self._close(trials)
        except Exception as exc:  # noqa: BLE001 - retried at the end of the sweep
            log.debug("could not close the sweep: %s", exc)

    def _close(self, trials: list[FrozenTrial], best: FrozenTrial | None = None) -> bool:
        best = self.study.best_trial() if best is None else best
        context = CloseContext(self.config, self.study, self.recorder, self.parent_id, trials, best)
        return close_sweep(context)

    def finish(self) -> SweepResult:
        """The sweep as this agent leaves it: closed by the elected agent, summary of failures."""
        trials = self.study.complete_trials()
        if trials is None:
            self.report(
                f"{self.config.identity}: this agent stopped; the sweep is not finished "
                "(other agents, or run again to resume)"
            )
            return self.result
        self.result.finished = True
        best = self.study.best_trial()
        self._close(trials, best)
        failed = self.study.failed_for_good(trials, infeasible=False)  # infeasible points are results
        self.result.failed_for_good = describe_failures(failed, self.log_dir)
        summary = f"{self.config.identity}: complete, parent run {self.parent_id}"
        if best is not None:
            summary += f", best {best.value:.6g} in trial {best.number} {best.params}"
        self.report(summary)
        if self.result.failed_for_good:
            self.report(
                f"{len(self.result.failed_for_good)} trial(s) failed after all retries:\n  "
                + "\n  ".join(self.result.failed_for_good)
            )
        return self.result
