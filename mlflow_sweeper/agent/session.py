"""One agent working on one sweep: its workers, its end, and the close of the sweep.

Built from `SweepParts` (`opening.open_parts`: the sweep opened, the launcher, the progress);
`run` starts `n_jobs` workers that claim trials and run each as a `TrialExecution`, and a
maintenance thread; `SweepEnd` (`ending.py`) closes the sweep and says how it ended.
"""

from __future__ import annotations

import logging
import threading

from ..coordination import Work
from ..coordination.companions import gone_message
from ..ui.links import link_lines, ui_links
from .ending import SweepEnd
from .failures import Failures
from .idle import IdleBackoff
from .maintenance import Maintenance, requeue_lost
from .parts import SweepParts
from .result import SweepResult
from .stop import StartBudget
from .trial import StopRequested, TrialContext, TrialExecution

log = logging.getLogger(__name__)


class SweepSession:
    """One agent on one sweep."""

    def __init__(
        self,
        parts: SweepParts,
        n_jobs: int = 1,
        starts: StartBudget | None = None,
        retry_failed: bool = False,
    ):
        self.parts = parts
        self.n_jobs = max(1, n_jobs)
        self.starts = starts or StartBudget()
        self.retry_failed = retry_failed  # points that failed for good get a fresh set of attempts
        self.config, self.study, self.result = parts.config, parts.study, parts.result
        self.failures = Failures(
            parts.config, parts.study, parts.counts, parts.progress, parts.console, parts.result
        )
        self.trial_context = TrialContext.of(parts, self.failures)
        self.end = SweepEnd(parts)
        self.running: dict[int, TrialExecution] = {}  # by Optuna trial id
        self.lock = threading.Lock()  # guards `running`
        self.done = threading.Event()  # set when the workers are gone: maintenance stops
        self.idle = IdleBackoff()  # idle workers look for work in turn, less often over time

    # ---- the session -----------------------------------------------------------------------------

    def report(self, message: str) -> None:
        self.parts.console.event(message)

    def report_stop(self, message: str) -> None:
        """Why this agent stops early: `--quiet` prints it too, as it prints the summary."""
        self.parts.console.summary(message)

    def run(self) -> SweepResult:
        parts, stop = self.parts, self.parts.stop
        if self.retry_failed:
            self._retry_failed()
        if self.study.is_finished() and not requeue_lost(self.study, stop):
            parts.console.event(f"{self.config.identity}: already complete, nothing to run", summary=False)
            self._print_links()
            return self._finish()
        if self.study.is_closed():
            self.study.reopen()  # more to run (a raised budget or retries): a new close is owed
        parts.recorder.parent.set_status(parts.parent_id, finished=False)
        self._announce()
        parts.console.start(parts.progress)
        maintenance = Maintenance(
            self.study,
            parts.recorder,
            parts.console,
            self.config.stale_after,
            self.running_trial_ids,
            self.refresh_progress,
        )
        thread = threading.Thread(target=maintenance.run, args=(self.done,), daemon=True, name="maintenance")
        thread.start()
        parts.description.start()
        try:
            while True:
                self._run_workers()
                if stop.is_set() or self.result.error or not requeue_lost(self.study, stop):
                    break
        finally:
            self.done.set()
            parts.uploads.drain()
            thread.join(timeout=5)
            parts.description.stop(*self._stopped_state())
            self.refresh_progress()  # other agents' last trials too, before the bar's last draw
            parts.console.stop()
        if stop.is_set():
            self.result.interrupted = True
            self.report(f"{self.config.identity}: interrupted; run the same command again to resume")
            return self.result
        if self.result.error:
            return self.result
        return self._finish()

    def _finish(self) -> SweepResult:
        """The sweep's end; when it fails because a study of the sweep was deleted by hand (its
        close election, say), the agent stops with that one message instead of a traceback."""
        try:
            return self.end.finish()
        except Exception:
            if self._stop_if_deleted():
                return self.result
            raise

    def _announce(self) -> None:
        """What this agent is about to do, and what of the config does not apply."""
        budget = self.study.budget
        trials = f"{budget} trial{'' if budget == 1 else 's'}"
        self.parts.console.event(
            f"{self.config.identity}: parent run {self.parts.parent_id}, {trials} in the budget, "
            f"{self.parts.progress.ended} done, up to {self.n_jobs} at once",
            summary=False,  # --quiet prints only the summary
        )
        self._print_links()
        self._note_ignored_max_trials()
        for note in self.study.source.strategy.notes():
            self.report(f"{self.config.identity}: {note}")

    def _print_links(self) -> None:
        """With a tracking server: the parent run's page and the experiment's runs page."""
        recorder = self.parts.recorder
        links = ui_links(recorder.client.tracking_uri, recorder.experiment_id, self.parts.parent_id)
        for line in link_lines(links):
            self.parts.console.event(f"{self.config.identity}: {line}", summary=False)

    def _stopped_state(self) -> tuple[str | None, str | None]:
        """What the description says when this agent leaves early; (None, None) otherwise."""
        if self.parts.stop.is_set():
            return "interrupted", None
        return ("stopped", self.result.error) if self.result.error else (None, None)

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
            threading.Thread(target=self._worker, daemon=True, name=f"worker-{i}") for i in range(self.n_jobs)
        ]
        with self.parts.stop.workers_running():  # Ctrl-C now cancels trials cleanly
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    worker.join(timeout=0.2)

    def _retry_failed(self) -> None:
        """`--retry-failed`: every point that failed for good is queued again with a fresh set of
        attempts, under the same parent (which is RUNNING again until they end)."""
        failed = self.failures.requeue_failed_for_good()
        if failed:
            numbers = ", ".join(str(t.number) for t in failed)
            self.report(f"{self.config.identity}: retrying {len(failed)} failed point(s) (trials {numbers})")

    # ---- workers ---------------------------------------------------------------------------------

    def _worker(self) -> None:
        stop = self.parts.stop
        while not stop.is_set() and self.result.error is None:
            if not self.starts.reserve():
                return
            # Its devices first, then a point: a worker waiting for a device another agent on
            # this host uses holds no point meanwhile (it would show as running).
            devices = self.trial_context.devices.acquire(stop.event)
            if devices is None:  # Ctrl-C while waiting for devices: nothing was claimed
                self.starts.release()
                return
            work = self._claim()
            if work is None:
                devices.release()
                self.starts.release()
                if self.result.error or (self.study.slots_exhausted() and not self.study.has_active()):
                    return
                if self.idle.wait(stop.event):
                    return
                continue
            self.idle.reset()
            if not self._execute(TrialExecution(self.trial_context, work, devices)):
                return
            self.end.close_if_last()

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
            missing = self.study.missing_studies()  # the sweep's study, or a companion of it
        except Exception:  # noqa: BLE001 - the storage itself failing: not a deletion
            return False
        gone = bool(missing)
        if gone and self.result.error is None:
            self.result.error = gone_message(self.config.identity, missing)
            self.report_stop(f"{self.result.error}; stopping this agent")
        return gone

    def _execute(self, trial: TrialExecution) -> bool:
        """Run one trial; False when this worker must stop (Ctrl-C, or an error in the agent)."""
        counts = self.parts.counts
        with self.lock:
            self.running[trial.work.trial_id] = trial
            counts.running_here(len(self.running))
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
                counts.running_here(len(self.running))
        return True

    def refresh_progress(self) -> None:
        """Every agent's counts on the bar (`SweepCounts.sync`), a failed read left for the next
        one: the counts are shown, not relied on."""
        try:
            self.parts.counts.sync(self.study.progress)
        except Exception as exc:  # noqa: BLE001
            log.debug("could not read the sweep's progress: %s", exc)

    def running_trial_ids(self) -> set[int]:
        with self.lock:
            return set(self.running)
