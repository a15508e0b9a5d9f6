"""An agent's workers: `n_jobs` threads, each taking a device group, claiming a trial, running it
as a `TrialExecution`, and closing the sweep after the last one, until nothing is left to claim.

What stops them is written to the session's `SweepResult` (`error`), said once on the console;
`WorkerPool.running_trial_ids` is what the maintenance thread beats for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..coordination import Work
from ..coordination.companions import gone_message
from .ending import SweepEnd
from .idle import IdleBackoff
from .parts import SweepParts
from .stop import StartBudget
from .trial import StopRequested, TrialContext, TrialExecution

log = logging.getLogger(__name__)


class WorkerPool:
    """This agent's worker threads on one sweep, and the trials they are running."""

    def __init__(
        self,
        parts: SweepParts,
        n_jobs: int,
        starts: StartBudget,
        trial_context: TrialContext,
        end: SweepEnd,
        watching: Callable[[], int] = lambda: 0,
    ):
        self.parts = parts
        self.watching = watching  # dead agents' trials running on here, watched: they count toward -j
        self.n_jobs = max(1, n_jobs)
        self.starts = starts
        self.trial_context = trial_context
        self.end = end
        self.study, self.result = parts.study, parts.result
        self.running: dict[int, TrialExecution] = {}  # by Optuna trial id
        self.lock = threading.Lock()  # guards `running`
        self._said_waiting = False  # for devices (see `_waiting_for_devices`)
        self.idle = IdleBackoff()  # idle workers look for work in turn, less often over time

    def run(self) -> None:
        """Start the workers and wait for all of them (Ctrl-C meanwhile cancels trials cleanly)."""
        workers = [
            threading.Thread(target=self._work, daemon=True, name=f"worker-{i}") for i in range(self.n_jobs)
        ]
        with self.parts.stop.workers_running():
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    worker.join(timeout=0.2)

    def running_trial_ids(self) -> set[int]:
        with self.lock:
            return set(self.running)

    def stop_if_deleted(self) -> bool:
        """After an error: True, the agent told and stopping, when the sweep's study is gone
        (`delete` ran while this agent worked); nothing is left to give back to."""
        try:
            missing = self.study.missing_studies()  # the sweep's study, or a companion of it
        except Exception:  # noqa: BLE001 - the storage itself failing: not a deletion
            return False
        gone = bool(missing)
        if gone and self.result.error is None:
            self._stop(gone_message(self.parts.config.identity, missing))
        return gone

    def _stop(self, error: str, after: str = "") -> None:
        """Why this agent stops early; `--quiet` prints it too, as it prints the summary."""
        self.result.error = error
        self.parts.console.summary(f"{error}; stopping this agent{after}")

    def _work(self) -> None:
        """One worker: devices first, then a point. A worker waiting for a device another agent
        on this host uses holds no point meanwhile (it would show as running)."""
        stop = self.parts.stop
        while not stop.is_set() and self.result.error is None:
            if self._places_taken():  # by trials of dead agents it watches: one starts when one ends
                if self.idle.wait(stop.event):
                    return
                continue
            if not self.starts.reserve():
                return
            devices = self.trial_context.devices.acquire(
                stop.event, self._waiting_for_devices, self._work_left
            )
            if devices is None:  # Ctrl-C, or nothing left to run, while waiting: nothing was claimed
                self.starts.release()
                return
            if self.trial_context.failures.stopped_elsewhere():  # fail_fast fired in another agent
                devices.release()
                self.starts.release()
                return
            work = self._claim()
            if work is None:
                devices.release()
                self.starts.release()
                if not self._work_left():
                    return
                if self.idle.wait(stop.event):
                    return
                continue
            self.idle.reset()
            if not self._execute(TrialExecution(self.trial_context, work, devices)):
                return
            self.end.close_if_last()

    def _places_taken(self) -> bool:
        """Are all of `-j`'s places taken, counting the dead agents' trials this agent watches
        (its workers run at most `-j` minus those)?"""
        watched = self.watching()
        if not watched:
            return False
        with self.lock:
            return len(self.running) + watched >= self.n_jobs

    def _work_left(self) -> bool:
        """May this worker still find a trial to run: no error, and a slot left, or a trial
        running or queued (its failure may be re-queued)?"""
        return self.result.error is None and not (
            self.study.slots_exhausted() and not self.study.has_active()
        )

    def _waiting_for_devices(self, why: str) -> None:
        """Said once per agent: its workers may wait for hours while another agent's trials run."""
        with self.lock:
            said, self._said_waiting = self._said_waiting, True
        if not said:
            self.parts.console.event(f"{self.parts.config.identity}: {why}")

    def _claim(self) -> Work | None:
        """A trial claimed, counted as being claimed until `_execute` counts it running here (the
        storage shows it running meanwhile); None when there is none, or the claim failed."""
        counts = self.parts.counts
        counts.claiming(+1)
        work = None
        try:
            work = self.study.claim()
        except Exception as exc:  # noqa: BLE001 - a storage failing for good: stop, exit 1
            log.debug("claim failed", exc_info=True)
            if not self.stop_if_deleted():
                self._stop(f"could not claim a trial: {type(exc).__name__}: {exc}")
        finally:
            if work is None:  # nothing to count running: the claim is over
                counts.claiming(-1)
        return work

    def _execute(self, trial: TrialExecution) -> bool:
        """Run one trial; False when this worker must stop (Ctrl-C, or an error in the agent)."""
        counts = self.parts.counts
        with self.lock:
            self.running[trial.work.trial_id] = trial
            counts.running_here(len(self.running), claimed=True)
        try:
            trial.run()
        except StopRequested:
            return False
        except Exception as exc:  # noqa: BLE001 - stop this agent, keep the sweep resumable
            log.debug("trial %s: unexpected error", trial.work.number, exc_info=True)
            if self.stop_if_deleted():
                return False
            self._stop(f"trial {trial.work.number}: {type(exc).__name__}: {exc}", " (the trial is re-queued)")
            trial.give_back(f"agent error: {exc}")
            return False
        finally:
            with self.lock:
                self.running.pop(trial.work.trial_id, None)
                counts.running_here(len(self.running))
        return True
