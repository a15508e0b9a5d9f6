"""Taking back the trials of agents that are gone: failed (through the atomic RUNNING -> FAIL
update, which one agent wins) and their points re-queued as the retry policy allows, or, when a
dead agent's run had finished, its result kept (see `agent.orphans`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from .. import compat
from .creation import TrialFactory
from .liveness import Heartbeat, adopt_nothing, fail_stale, fail_stale_trials
from .names import AGENT_LOST, NO_RETRY, QUIT, RUN_ATTR, SLOT
from .policy import LOST_RERUNS, RetryPolicy, attempt_of, first_attempt_of, loss_spends_an_attempt, lost_count
from .store import RetryingStorage, mark_infeasible


class Reclaiming:
    def __init__(
        self, store: RetryingStorage, factory: TrialFactory, liveness: Heartbeat, policy: RetryPolicy
    ):
        self.store = store
        self.factory = factory  # makes the re-runs, and holds the study's id once attached
        self.liveness = liveness
        self.policy = policy

    def owner_gone(self, trial: FrozenTrial, now: float) -> str | None:
        """Why a RUNNING trial's agent counts as gone (it died on this host, or went silent past
        `stale_after`), or None while it lives: what the next maintenance pass reclaims."""
        return self.liveness.why_stale(trial, now)

    def is_running(self, trial_id: int) -> bool:
        """Is the trial still RUNNING (no agent has ended it)? One read of the trial."""
        return self.store.get_trial(trial_id).state == TrialState.RUNNING

    def mark_quit(self, trial_ids: Iterable[int]) -> None:
        """This agent quits at once (a second Ctrl-C): its running trials say so, for the agent
        that reclaims them. One try each, no retry: the user asked to leave now."""
        for trial_id in trial_ids:  # failing, it is reclaimed as a dead agent's
            with contextlib.suppress(Exception):
                self.store.raw.set_trial_system_attr(trial_id, QUIT, True)

    def reclaim_stale(
        self, own_running: set[int], adopt: Callable[[FrozenTrial, str], bool] = adopt_nothing
    ) -> list[tuple[FrozenTrial, str, bool]]:
        """Fail RUNNING trials whose agent went silent (or died on this host) and re-queue them.

        `adopt` is offered each such trial first: True when it kept the trial's result (its run
        had finished) or found it ended meanwhile, so it is neither failed nor run again.
        Returns the reclaimed trials, why, and whether each was re-queued; only the agent that wins
        the RUNNING -> FAIL update reclaims a trial.
        """
        requeued: dict[int, bool] = {}

        def requeue(trial: FrozenTrial, why: str) -> None:
            requeued[compat.trial_id(trial)] = self.requeue_if_allowed(trial, agent_lost=True)

        study_id = self.factory.study_id
        failed = fail_stale_trials(
            self.store, study_id, self.liveness, own_running, requeue, adopt, mark=self._mark_lost
        )
        return [
            (trial, why + _past_allowance(trial), requeued[compat.trial_id(trial)]) for trial, why in failed
        ]

    def reclaim_trial(
        self,
        trial: FrozenTrial,
        why: str,
        *,
        retry: bool = True,
        again: bool = False,
        infeasible: str | None = None,
        agent_lost: bool = False,
    ) -> bool | None:
        """Fail one trial whose agent is gone, as `reclaim_stale` does, and re-queue its point when
        it may run again; whether it was re-queued, or None when another agent ended it first.
        `retry` False: its trial ended in a way another attempt would not cure (`infeasible`: why
        its point cannot run), so it is not re-queued; `again`: it was interrupted, not failed, so
        its point is re-queued as the same attempt; `agent_lost`: how it ended is unknown (its agent
        is lost), so its point runs again as `RetryPolicy.rerun` says."""
        trial_id = compat.trial_id(trial)
        with contextlib.suppress(UpdateFinishedTrialError):  # ended meanwhile: the update loses
            if infeasible is not None:
                mark_infeasible(self.store, trial_id, infeasible)
            if not retry:
                self.store.set_trial_system_attr(trial_id, NO_RETRY, True)
            if agent_lost:
                self._mark_lost(trial)
        if not fail_stale(self.store, trial, why):
            return None
        if again:
            self.requeue_trial(trial, again=True)
            return True
        return retry and self.requeue_if_allowed(trial, agent_lost)

    def _mark_lost(self, trial: FrozenTrial) -> None:
        """Before it is failed: the trial ended because its agent was lost, not by itself (an agent
        re-queueing it later, its reclaimer having died, reads it)."""
        self.store.set_trial_system_attr(compat.trial_id(trial), AGENT_LOST, True)

    def requeue_trial(
        self, trial: FrozenTrial, afresh: bool = False, again: bool = False, losses: int | None = None
    ) -> None:
        """Queue the next attempt of a failed trial's point; `afresh`: with a fresh set of attempts
        (a point failed for good), numbered on from the attempts it spent, and its agent's losses
        forgotten; `again`: the same attempt once more (it was interrupted, not failed); `losses`:
        the times its agent was lost so far (default: as many as the trial carries)."""
        attempt = attempt_of(trial) + (0 if again else 1)
        if losses is None:
            losses = 0 if afresh else lost_count(trial)
        self.factory.queue_rerun(
            dict(trial.params),
            int(trial.system_attrs[SLOT]),
            attempt,
            trial.user_attrs.get(RUN_ATTR),
            attempt if afresh else first_attempt_of(trial),
            losses,
        )

    def requeue_if_allowed(self, trial: FrozenTrial, agent_lost: bool | None = None) -> bool:
        """Re-queue a failed trial's point as `RetryPolicy.rerun` says; True if re-queued.
        `agent_lost`: whether its agent was lost (None: as the trial records)."""
        if SLOT not in trial.system_attrs:
            return False
        rerun = self.policy.rerun(trial, agent_lost)
        if rerun is None:
            return False
        self.requeue_trial(trial, again=rerun.again, losses=rerun.losses)
        return True


def _past_allowance(trial: FrozenTrial) -> str:
    """Said of a lost agent's trial whose point has had its re-runs as the same attempt: why this
    loss counts as a failed attempt."""
    if not loss_spends_an_attempt(trial):
        return ""
    return f"; its agent was lost {lost_count(trial) + 1} times, past the {LOST_RERUNS} re-runs a loss gets"
