"""What a failed attempt means for the sweep beyond its own point: the log's tail on the console
on the point's first failure, and `fail_fast` (the first trials all failed: stop starting new
ones, keeping the failed points' attempts for the resume)."""

from __future__ import annotations

import logging
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from ..config import SweepConfig
from ..coordination import SweepStudy, Work
from ..coordination.fail_fast import fail_fast_reason
from ..coordination.tallies import infeasible, needing_attention
from ..progress import Reporter, SweepProgress
from ..trial_log import indented_tail
from .counts import SweepCounts
from .result import SweepResult

log = logging.getLogger(__name__)


class Failures:
    def __init__(
        self,
        config: SweepConfig,
        study: SweepStudy,
        counts: SweepCounts,
        progress: SweepProgress,
        console: Reporter,
        result: SweepResult,
    ):
        self.config = config
        self.study = study
        self.counts = counts
        self.progress = progress
        self.console = console
        self.result = result

    def after_failure(self, work: Work, log_path: Path) -> None:
        """After a failed attempt: the log's tail on the console on the point's first failure (once
        per failing point, however many retries follow), then the `fail_fast` check."""
        if work.attempt == work.first_attempt:
            self.show_tail(work, log_path)
        if not self.fail_fast_armed:
            return  # skip the read
        stop = fail_fast_reason(self.study.trials(), self.config.fail_fast)
        if not stop:
            return
        # Nothing has worked yet: the points failed so far keep their attempts for the resume,
        # and so does a point whose last attempt was still running when this agent stopped.
        again, _ = self.requeue_failed_for_good()
        if self.stopped_elsewhere():  # stopped already, here or by another agent: said, marked
            return
        if again:  # their console lines said "failed for good": not so now (other agents
            # may have queued some of them: no count that would be only this agent's)
            stop += ". On resume, every point that failed so far runs again"
        self.study.mark_fail_fast(stop)  # the other agents stop starting trials too
        self.result.error = f"{self.config.identity}: {stop}"
        self.console.summary(self.result.error)

    @property
    def fail_fast_armed(self) -> bool:
        """May `fail_fast` still stop the sweep (on, and no trial of it completed yet)? The points
        failed so far then run again on resume."""
        return self.config.fail_fast > 0 and self.progress.done == 0

    def stopped_elsewhere(self) -> bool:
        """Has another agent's failure fired `fail_fast` since this agent opened the sweep? Then
        this one stops starting trials too, saying why. Asked before each claim, with one read,
        only while `fail_fast` can still fire (no trial completed yet)."""
        if self.result.error is not None:
            return True
        if self.progress.done > 0:
            return False
        try:
            stop = self.study.fail_fast_fired()  # None, unread, with fail_fast: 0
        except Exception:  # noqa: BLE001 - the storage failing: the claim that follows says so
            log.debug("reading the fail_fast mark failed", exc_info=True)
            return False
        if stop is None:
            return False
        self.result.error = f"{self.config.identity}: {stop}"
        self.console.summary(self.result.error)
        return True

    def show_tail(self, work: Work, log_path: Path) -> None:
        """The last lines of the attempt's log on the console, when it wrote any here."""
        tail = indented_tail(log_path)
        if tail:
            self.console.event(f"trial {work.number}: last lines of {log_path}:\n{tail}")

    def stop_sweep(self, message: str) -> None:
        """Stop this agent's workers from starting trials: the first reason given is kept."""
        if self.result.error is None:
            self.result.error = message

    def requeue_failed_for_good(self) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """Queue every point that failed for good again, with a fresh set of attempts: (the failed
        trials, the infeasible ones left as they are)."""
        every = self.study.failed_for_good(self.study.trials())
        owed = needing_attention(every)  # not infeasible ones
        failed = [t for t in owed if t.state == TrialState.FAIL]
        for trial in failed:
            self.study.requeue_trial(trial, afresh=True)
        if failed:
            self.counts.failed_again_owed(len(failed))
        return failed, infeasible(every)
