"""The end of a sweep as one agent sees it: the close, run by whichever agent ends the last trial
(if the study elects it), and the summary this agent leaves with."""

from __future__ import annotations

import logging
import time

from optuna.trial import FrozenTrial, TrialState

from ..constraints import feasible_only
from ..display import shown_params, shown_value
from .closing import CloseContext, close_sweep
from .parts import SweepParts
from .result import SweepResult, describe_failures

log = logging.getLogger(__name__)

CLOSE_POLL = 0.5  # seconds before the first look again at a close another agent runs; doubled each look
CLOSE_POLL_LONGEST = 5.0
CLOSE_PATIENCE = 60.0  # seconds an agent waits at least for another's close (stale_after, if longer)
CLOSE_WAIT_SAID = 2.0  # seconds of waiting on it before the agent says why it has not ended


class SweepEnd:
    def __init__(self, parts: SweepParts):
        self.parts = parts
        self.study = parts.study
        self.identity = parts.config.identity

    def close_if_last(self) -> None:
        """After each trial: whichever agent ends the last trial closes the sweep (if elected)."""
        if not self.study.exhausted_seen:
            return  # slots are left: not the last trial
        try:
            trials = self.study.complete_trials()
            if trials is not None:
                self.close(trials)
        except Exception as exc:  # noqa: BLE001 - retried at the end of the sweep
            log.debug("could not close the sweep: %s", exc)

    def close(self, trials: list[FrozenTrial], best: FrozenTrial | None = None) -> bool:
        """Run the close actions if this agent is elected; True when it closed the sweep."""
        best = self.study.best_trial() if best is None else best
        parts = self.parts
        context = CloseContext(parts.config, self.study, parts.recorder, parts.parent_id, trials, best)
        return close_sweep(context)

    def _await_close(self, trials: list[FrozenTrial], best: FrozenTrial | None) -> bool:
        """Another agent is closing the sweep: wait until it has finished the parent, so that
        "complete" is said of a closed sweep, and take the close over if that agent dies or gives
        it up on the way (the election then hands it on). Each look reads the close study alone.
        False when the closer is still at it after `stale_after` (alive, but slow or stuck: it
        runs on, and this agent leaves saying so)."""
        epoch, began, said = self.study.close_epoch(), time.monotonic(), False
        patience = max(CLOSE_PATIENCE, self.parts.config.stale_after)
        pause = CLOSE_POLL
        while not self.study.is_closed():
            if self.study.close_epoch() != epoch:  # re-opened (a resume raised the budget): not this end
                return True
            if self.close(trials, best):
                return True
            waited = time.monotonic() - began
            if waited >= patience:
                return False
            if not said and waited >= CLOSE_WAIT_SAID:
                said = True
                self.parts.console.event(
                    f"{self.identity}: all trials ended; waiting for the agent closing the sweep "
                    "to finish its parent run"
                )
            time.sleep(pause)
            pause = min(pause * 2, CLOSE_POLL_LONGEST)
        return True

    def _none_feasible(self, trials: list[FrozenTrial]) -> bool:
        """Results, none of them satisfying `spec.constraints` (with one objective or several)."""
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        return bool(self.parts.config.objective.constraints and complete and not feasible_only(complete))

    def finish(self, count: int | None = None) -> SweepResult:
        """The sweep as this agent leaves it: closed by the elected agent, summary of failures.
        `count`: the `--count` this agent started all of, if it did."""
        result, console = self.parts.result, self.parts.console
        trials = self.study.complete_trials()
        if trials is None:
            why = f" at --count {count}" if count is not None else ""
            console.event(
                f"{self.identity}: this agent stopped{why}; the sweep is not finished "
                "(other agents, or run again to resume)"
            )
            return result
        result.finished = True
        best = self.study.best_trial()
        closed = self.close(trials, best) or self._await_close(trials, best)
        failed = self.study.failed_for_good(trials, infeasible=False)  # infeasible points are results
        result.failed_for_good = describe_failures(failed, self.parts.log_dir)
        summary = f"{self.identity}: complete, parent run {self.parts.parent_id}"
        if not closed:
            summary += " (another agent is still closing it: the parent is not FINISHED yet)"
        if best is not None:
            best_params = shown_params(best.params)
            summary += f", best {shown_value(best.value)} in trial {best.number} ({best_params})"
        elif self._none_feasible(trials):
            summary += ", no feasible trial (none satisfies spec.constraints)"
        console.event(summary)
        if result.failed_for_good:
            console.event(
                f"{len(result.failed_for_good)} trial(s) failed for good:\n  "
                + "\n  ".join(result.failed_for_good)
                + f"\n  once fixed, `mlflow-sweeper sweep {self.parts.config.path} --retry-failed` "
                "runs them again"
            )
        return result
