"""An agent: runs the trials of one sweep after another with up to `n_jobs` at once.

Each worker thread claims a trial (coordination), launches it (launch), records it (record)
and tells Optuna how it ended. A maintenance thread beats the heart of this agent's trials and
reclaims the trials of agents that went silent. Many agents may run the same sweep.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from .algorithms import PointSource
from .config import SweepConfig
from .coordination import SweepStudy, Work, agent_id
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .launch import Launcher, TrialHandle, kill_tree, make_launcher
from .progress import Reporter, SweepProgress
from .record import Recorder, tag_agent_run
from .storages import (
    open_mlflow_tracking,
    open_optuna_storage,
    probe_mlflow_storage,
    probe_optuna_storage,
)

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5
POLL_SECONDS = 0.1  # how often a waiting worker checks for Ctrl-C and its timeout
LOST_REQUEUE_GRACE = 60.0


@dataclass
class SweepOutcome:
    identity: str
    finished: bool = False
    failed_for_good: list[str] = field(default_factory=list)
    error: str | None = None  # a trial could not be launched, or the agent had to stop
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed_for_good or self.error:
            return EXIT_FAILED
        return EXIT_OK


class StopRequested(Exception):
    pass


class Agent:
    def __init__(self, n_jobs: int = 1, count: int | None = None, reporter: Reporter | None = None):
        self.n_jobs = max(1, n_jobs)
        self.count = count
        self.started = 0
        self.reporter = reporter or Reporter()
        self.stop = threading.Event()
        self.agent = agent_id()
        self.trial_pids: set[int] = set()
        self.running_trials = False  # set while workers run: Ctrl-C then cancels them cleanly
        self._lock = threading.Lock()

    # ---- signals -------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            if not self.running_trials:
                raise KeyboardInterrupt  # nothing to cancel yet: leave now, exit 130
            if self.stop.is_set():
                # Second Ctrl-C: kill what is running and leave at once.
                for pid in list(self.trial_pids):
                    kill_tree(pid, grace=0)
                os._exit(EXIT_INTERRUPTED)
            self.stop.set()
            self.reporter.event("interrupted: cancelling running trials (press Ctrl-C again to quit at once)")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    # ---- sweeps --------------------------------------------------------------------------------

    def run(self, configs: list[SweepConfig]) -> int:
        code = EXIT_OK
        for config in configs:
            if self.stop.is_set():
                return EXIT_INTERRUPTED
            outcome = SweepRun(self, config).run()
            if outcome.interrupted:
                return EXIT_INTERRUPTED
            code = max(code, outcome.exit_code)
            if self.count is not None and self.started >= self.count:
                break
        return code

    def reserve_start(self) -> bool:
        """Count a trial against --count; False once this agent has started enough."""
        with self._lock:
            if self.count is not None and self.started >= self.count:
                return False
            self.started += 1
            return True

    def release_start(self) -> None:
        with self._lock:
            self.started -= 1


class SweepRun:
    """One agent working on one sweep."""

    def __init__(self, agent: Agent, config: SweepConfig):
        self.agent = agent
        self.config = config
        self.outcome = SweepOutcome(config.identity)
        self.running: dict[int, tuple[Work, TrialHandle | None]] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()

    @property
    def reporter(self) -> Reporter:
        return self.agent.reporter

    def open(self) -> None:
        config = self.config
        import mlflow

        tracking_uri = config.mlflow_storage or mlflow.get_tracking_uri()
        # Both storages must answer before either is created or written.
        probe_optuna_storage(config.optuna_storage)
        probe_mlflow_storage(tracking_uri)
        self.storage = open_optuna_storage(config.optuna_storage)
        self.source = PointSource(config)
        self.study = SweepStudy(self.storage, config, self.source, self.agent.agent)
        if self.study.find():
            self.study.check_drift()  # before anything is written for this config
        client = open_mlflow_tracking(tracking_uri)
        self.tracking_uri = tracking_uri = client.tracking_uri
        self.recorder = Recorder(client, config)
        self.parent_id = self.study.create_or_attach(self.recorder.create_parent, self.recorder.parent_state)
        tag_agent_run(config, self.parent_id, self.recorder.experiment_id, tracking_uri)
        self.log_dir = config.log_dir
        self.launcher: Launcher = make_launcher(config, tracking_uri, self.log_dir)

    def run(self) -> SweepOutcome:
        self.open()
        progress = self.study.progress()
        self.progress = SweepProgress(
            name=self.config.identity,
            total=self.study.budget,
            done=progress.complete,
            failed=progress.failed_for_good,
            direction=self.config.objective.direction,
        )
        if progress.best is not None:
            self.progress.best = progress.best.value
        if self.study.is_finished() and not self._requeue_lost():
            self.reporter.event(f"{self.config.identity}: already complete, nothing to run")
            return self.finish()
        self.recorder.set_parent_status(self.parent_id, finished=False)
        try:
            self.launcher.prepare()
        except Exception as exc:  # noqa: BLE001 - a bad project or entry point
            self.outcome.error = f"cannot launch trials of {self.config.identity}: {exc}"
            self.reporter.event(self.outcome.error)
            return self.outcome
        self.run_tags = self.launcher.run_tags()
        self.reporter.event(
            f"{self.config.identity}: parent run {self.parent_id}, {self.study.budget} trials in the budget, "
            f"{progress.complete} done, up to {self.agent.n_jobs} at once"
        )
        self.reporter.start(self.progress)
        maintenance = threading.Thread(target=self._maintain, daemon=True, name="maintenance")
        maintenance.start()
        try:
            while True:
                self._run_workers()
                if self.agent.stop.is_set() or self.outcome.error or not self._requeue_lost():
                    break
        finally:
            self.done.set()
            maintenance.join(timeout=5)
            self.reporter.stop()
        if self.agent.stop.is_set():
            self.outcome.interrupted = True
            self.reporter.event(f"{self.config.identity}: interrupted; run the same command again to resume")
            return self.outcome
        if self.outcome.error:
            return self.outcome
        return self.finish()

    def _run_workers(self) -> None:
        self.agent.running_trials = True
        try:
            self._start_and_join_workers()
        finally:
            self.agent.running_trials = False

    def _start_and_join_workers(self) -> None:
        workers = [
            threading.Thread(target=self._worker, daemon=True, name=f"worker-{i}")
            for i in range(self.agent.n_jobs)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            while worker.is_alive():
                worker.join(timeout=0.2)

    def _requeue_lost(self) -> bool:
        """Look for points owed a re-run once nothing is active; True to go on working.

        A stale trial is failed first and re-queued right after by the agent that reclaimed it.
        If that agent died in between, the point is re-queued here once the failure is older
        than LOST_REQUEUE_GRACE; until then this agent waits for the re-queue to appear.
        """
        if not self.study.is_finished():
            return False
        lost = self.study.unresolved_slots(self.study.trials())
        if not lost:
            return False
        now = dt.datetime.now()
        for trial in lost:
            ended = trial.datetime_complete or now
            if (now - ended).total_seconds() > LOST_REQUEUE_GRACE:
                self.study.requeue_trial(trial)
        return not self.agent.stop.wait(1.0)

    def finish(self) -> SweepOutcome:
        """Close the sweep if it is done: parent FINISHED, best trial, summary of failures."""
        trials = self.study.complete_trials()
        if trials is None:
            self.reporter.event(
                f"{self.config.identity}: this agent stopped; the sweep is not finished "
                "(other agents, or run again to resume)"
            )
            return self.outcome
        self.outcome.finished = True
        best = self.study.best_trial()
        if best is not None and best.user_attrs.get("mlflow_run_id"):
            self.recorder.record_best(
                self.parent_id, best.user_attrs["mlflow_run_id"], best.value, force=True
            )
        self.recorder.set_parent_status(self.parent_id, finished=True)
        for trial in self.study.failed_for_good(trials):
            reason = trial.user_attrs.get("fail_reason", "failed")
            where = self.log_dir / f"trial-{trial.number}.log"
            self.outcome.failed_for_good.append(
                f"trial {trial.number} {trial.params}: {reason} "
                f"(run {trial.user_attrs.get('mlflow_run_id')}, log {where})"
            )
        summary = f"{self.config.identity}: complete, parent run {self.parent_id}"
        if best is not None:
            summary += f", best {best.value:.6g} in trial {best.number} {best.params}"
        self.reporter.event(summary)
        if self.outcome.failed_for_good:
            self.reporter.event(
                f"{len(self.outcome.failed_for_good)} trial(s) failed after all retries:\n  "
                + "\n  ".join(self.outcome.failed_for_good)
            )
        return self.outcome

    # ---- workers -------------------------------------------------------------------------------

    def _worker(self) -> None:
        while not self.agent.stop.is_set() and self.outcome.error is None:
            if not self.agent.reserve_start():
                return
            try:
                work = self.study.claim()
            except Exception as exc:  # noqa: BLE001 - a storage failing for good: stop, exit 1
                self.agent.release_start()
                log.debug("claim failed", exc_info=True)
                self.outcome.error = f"could not claim a trial: {type(exc).__name__}: {exc}"
                self.reporter.event(f"{self.outcome.error}; stopping this agent")
                return
            if work is None:
                self.agent.release_start()
                if self.study.slots_exhausted() and not self.study.has_active():
                    return
                if self.agent.stop.wait(IDLE_POLL_SECONDS):
                    return
                continue
            try:
                self._run_trial(work)
            except StopRequested:
                return
            except Exception as exc:  # noqa: BLE001 - stop this agent, keep the sweep resumable
                log.debug("trial %s: unexpected error", work.number, exc_info=True)
                self.outcome.error = f"trial {work.number}: {type(exc).__name__}: {exc}"
                self.reporter.event(f"{self.outcome.error}; stopping this agent (the trial is re-queued)")
                self._give_back(work, f"agent error: {exc}")
                return
            self._maybe_close_sweep()

    def _run_trial(self, work: Work) -> None:
        config = self.config
        params = {**work.params, **config.space.fixed}
        run_id = None
        with self.lock:
            self.running[work.trial_id] = (work, None)
            self.progress.running = len(self.running)
        try:
            if self.agent.stop.is_set():
                self._cancelled(work, None)
                raise StopRequested
            if self.launcher.creates_run:
                run_id = self.recorder.create_trial_run(
                    self.parent_id, work.number, work.attempt, params, self.run_tags
                )
                self.study.set_run_id(work, run_id)
                if work.replaces_run:
                    self.recorder.replace_run(work.replaces_run, run_id)
            log_name = f"trial-{work.number}.log"
            try:
                handle = self.launcher.launch(run_id, self.recorder.experiment_id, params, log_name)
            except Exception as exc:  # noqa: BLE001 - e.g. a missing entry point parameter
                self._launch_failed(work, run_id, exc)
                return
            if not self.launcher.creates_run:
                run_id = handle.run_id
                self.recorder.adopt_run(run_id, self.parent_id, work.number, work.attempt, params)
                self.study.set_run_id(work, run_id)
                if work.replaces_run:
                    self.recorder.replace_run(work.replaces_run, run_id)
            with self.lock:
                self.running[work.trial_id] = (work, handle)
            if handle.pid is not None:
                self.agent.trial_pids.add(handle.pid)
            self.reporter.event(
                f"trial {work.number} started (run {run_id}{_attempt(work)}): {_fmt(work.params)}"
            )
            self._await(work, handle, run_id)
        finally:
            with self.lock:
                self.running.pop(work.trial_id, None)
                self.progress.running = len(self.running)

    def _await(self, work: Work, handle: TrialHandle, run_id: str) -> None:
        deadline = None if self.config.trial_timeout is None else time.monotonic() + self.config.trial_timeout
        try:
            while True:
                ok = handle.wait(POLL_SECONDS)
                if ok is not None:
                    break
                if self.agent.stop.is_set():
                    handle.cancel()
                    self._cancelled(work, run_id)
                    raise StopRequested
                if deadline is not None and time.monotonic() > deadline:
                    handle.cancel()
                    self._ended(
                        work,
                        run_id,
                        None,
                        f"timed out after {self.config.trial_timeout:g} s (trial_timeout)",
                        status="KILLED",
                    )
                    return
        finally:
            handle.close()
            self.agent.trial_pids.discard(handle.pid)
        self.recorder.attach_log(run_id, str(self.log_dir / f"trial-{work.number}.log"))
        if not ok:
            code = getattr(handle, "returncode", None)
            self._ended(
                work,
                run_id,
                None,
                f"the run failed (exit code {code})" if code is not None else "the run failed",
            )
            return
        metric = self.config.objective.metric
        if metric is None:
            self._ended(work, run_id, None, None)
            return
        value = self.recorder.read_metric(run_id, metric)
        if value is None:
            self._ended(work, run_id, None, f"the run did not log the metric '{metric}'")
        elif math.isnan(value):
            self._ended(work, run_id, None, f"the metric '{metric}' is NaN")
        else:
            self._ended(work, run_id, value, None)

    def _ended(
        self, work: Work, run_id: str, value: float | None, failure: str | None, status: str = "FAILED"
    ) -> None:
        if failure is None:
            self.recorder.end_trial_run(run_id, "FINISHED")
            self.study.complete(work, value)
            with self.lock:
                self.progress.done += 1
                self.progress.done_here += 1
                improved = self.progress.offer_best(value)
            shown = "" if value is None else f", {self.config.objective.metric}={value:.6g}"
            self.reporter.event(f"trial {work.number} finished (run {run_id}{shown})")
            if improved:  # only then can it beat what the parent shows
                self.recorder.record_best(self.parent_id, run_id, value)
            return
        self.recorder.end_trial_run(run_id, status)
        requeued = self.study.fail(work, failure, retry_it=True, old_run=run_id)
        with self.lock:
            if not requeued:
                self.progress.failed += 1
        then = "will be retried" if requeued else "failed for good"
        self.reporter.event(
            f"trial {work.number} failed (run {run_id}): {failure}; {then}; log: "
            f"{self.log_dir / f'trial-{work.number}.log'}"
        )

    def _cancelled(self, work: Work, run_id: str | None) -> None:
        """Ctrl-C: the run is KILLED, the point re-queued without counting an attempt."""
        if run_id:
            self.recorder.end_trial_run(run_id, "KILLED")
        self.study.fail(
            work, "interrupted (Ctrl-C or SIGTERM)", retry_it=True, count_attempt=False, old_run=run_id
        )
        self.reporter.event(f"trial {work.number} cancelled (run {run_id})")

    def _launch_failed(self, work: Work, run_id: str | None, exc: Exception) -> None:
        message = f"trial {work.number} could not be launched: {exc}"
        self.outcome.error = message
        self.recorder.kill_run(run_id, "FAILED")
        # Re-queued as it was, so the sweep resumes once the project is fixed.
        self.study.fail(work, message, retry_it=True, count_attempt=False, old_run=run_id)
        self.reporter.event(message)

    def _give_back(self, work: Work, reason: str) -> None:
        try:
            self.recorder.kill_run(work.run_id, "FAILED")
            self.study.fail(work, reason, retry_it=True, count_attempt=False, old_run=work.run_id)
        except Exception:  # noqa: BLE001
            log.exception("could not give trial %s back", work.number)

    def _maybe_close_sweep(self) -> None:
        """Whichever agent ends the last trial marks the parent FINISHED."""
        if not self.study.exhausted_seen:
            return  # slots are left: not the last trial
        try:
            if self.study.is_complete():
                self.recorder.set_parent_status(self.parent_id, finished=True)
        except Exception as exc:  # noqa: BLE001 - retried at the end of the sweep
            log.debug("could not check whether the sweep is finished: %s", exc)

    # ---- maintenance -------------------------------------------------------------------------

    def _maintain(self) -> None:
        """Beat for this agent's trials; reclaim trials of silent or dead agents. The first check
        runs at once, so a restarted agent takes over its dead predecessor's trials right away."""
        interval = max(0.2, min(30.0, self.config.stale_after / 4))
        while True:
            with self.lock:
                own = set(self.running)
            if own:
                self.study.heartbeat(own)
            try:
                for trial, why, requeued in self.study.reclaim_stale(own):
                    self.recorder.kill_run(trial.user_attrs.get("mlflow_run_id"), "FAILED")
                    then = "re-queued" if requeued else "failed for good"
                    self.reporter.event(f"trial {trial.number} reclaimed: {why}; {then}")
                for slot in self.study.release_stale_claims():
                    self.reporter.event(f"slot {slot} released: its agent died while claiming it")
            except Exception as exc:  # noqa: BLE001 - try again at the next beat
                log.warning("could not check for stale trials: %s", exc)
            if self.done.wait(interval):
                return


def _attempt(work: Work) -> str:
    return f", attempt {work.attempt}" if work.attempt > 1 else ""


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
