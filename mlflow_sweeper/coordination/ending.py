"""Ending a trial this agent owns (or adopts): its run recorded, then COMPLETE, PRUNED or FAIL.

A failed point is re-queued before its trial is failed, so the sweep never looks finished in
between.
"""

from __future__ import annotations

import contextlib

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from .creation import TrialFactory, Work
from .ledger import ClaimsLedger
from .names import AGENT_LOST, NO_RETRY, RUN_ATTR
from .policy import RetryPolicy
from .store import RetryingStorage, finish, set_reason, stored_values
from .target import TargetMark


class TrialEnding:
    def __init__(
        self,
        store: RetryingStorage,
        ledger: ClaimsLedger,
        factory: TrialFactory,
        policy: RetryPolicy,
        target: TargetMark,
    ):
        self.store = store
        self.ledger = ledger
        self.factory = factory
        self.policy = policy
        self.target = target

    def bind_run(self, work: Work, run_id: str) -> None:
        """The trial's run exists; its id reaches the storage with `launched`."""
        work.run_id = run_id
        work.run_recorded = False

    def launched(self, work: Work) -> None:
        """What a trial's creation still owes the storage: its run id, and the settling of its
        slot's claim. Called once the trial's process is starting (these writes then overlap
        its start-up), and again, as a no-op, when it ends. Until then a dying agent leaves a
        RUNNING claim, which `ClaimsLedger.release_stale` settles since the slot's trial exists.
        """
        if work.run_id and not work.run_recorded:
            with contextlib.suppress(UpdateFinishedTrialError):  # reclaimed by another agent
                self.store.set_trial_user_attr(work.trial_id, RUN_ATTR, work.run_id)
            work.run_recorded = True
        if work.claim_id is not None:
            self.ledger.settle(work.claim_id, work.number)
            work.claim_id = None

    def complete(
        self, work: Work, value: float | list[float] | None, constraints: dict[str, float] | None = None
    ) -> None:
        """COMPLETE with its value (one objective) or values (several, in `spec.metrics` order),
        and its constraint values (system attrs the samplers read) written first.

        A value reaching `spec.target` is recorded in the study first, so no agent claims again;
        only a feasible one counts.
        """
        self.launched(work)
        self._write_constraints(work, constraints)
        self.target.note(work.number, value, constraints)
        values = self._stored(value)
        try:
            self.store.set_trial_state_values(work.trial_id, TrialState.COMPLETE, values)
        except UpdateFinishedTrialError:
            if not self._completed_as(work.trial_id, values):
                raise  # another agent ended it (reclaimed): not this agent's to complete

    def adopt(
        self, work: Work, value: float | list[float] | None, constraints: dict[str, float] | None = None
    ) -> bool:
        """COMPLETE a dead agent's trial with the result its finished run holds, as `complete`
        would have; True when this agent's RUNNING -> COMPLETE update won (another agent
        reclaiming it at the same time may have failed or adopted it first). A value reaching
        `spec.target` is recorded once the update is won, not before as `complete` does: a losing
        agent's trial may have been failed instead, and the few claims made meanwhile run."""
        values = self._stored(value)
        try:
            self._write_constraints(work, constraints)
            self.store.set_trial_state_values(work.trial_id, TrialState.COMPLETE, values)
        except UpdateFinishedTrialError:
            # lost, unless this very write landed before the error (a retried call whose first
            # try committed): then settling it here too is harmless, every step being idempotent
            if not self._completed_as(work.trial_id, values):
                return False
        self.target.note(work.number, value, constraints)
        return True

    def prune(self, work: Work) -> bool:
        """PRUNED, with its last intermediate value, as Optuna's tell records it; never re-queued.
        False when the trial had already ended (reclaimed by another agent)."""
        from ..pruning import tell_pruned

        self.launched(work)
        return tell_pruned(self.store.raw, work.trial_id)

    def fail(
        self, work: Work, reason: str, *, retry_it: bool, count_attempt: bool, old_run: str | None
    ) -> bool:
        """Fail the trial; re-queue its point first when it may run again. True if re-queued."""
        self.launched(work)
        set_reason(self.store, work.trial_id, reason)
        attempt = work.attempt + 1 if count_attempt else work.attempt
        requeued = retry_it and self.policy.may_run(attempt, work.first_attempt)
        if requeued:
            self.factory.queue_rerun(
                work.params, work.slot, attempt, old_run, work.first_attempt, work.losses
            )
        elif not retry_it:  # on purpose: no agent re-queues it as a lost retry
            with contextlib.suppress(UpdateFinishedTrialError):
                self.store.set_trial_system_attr(work.trial_id, NO_RETRY, True)
        with contextlib.suppress(UpdateFinishedTrialError):  # ended by a reclaimer: it is its word
            # An agent taking it for a lost one's marks it so before it ends it; this agent, slow
            # but not lost, ends it first: it failed by itself, and is not run again as lost.
            self.store.set_trial_system_attr(work.trial_id, AGENT_LOST, False)
        finish(self.store, work.trial_id, TrialState.FAIL)
        return requeued

    def _write_constraints(self, work: Work, constraints: dict[str, float] | None) -> None:
        """The constraint values (system attrs the samplers read), written before COMPLETE."""
        for key, violation in (constraints or {}).items():
            self.store.set_trial_system_attr(work.trial_id, key, violation)

    @staticmethod
    def _stored(value: float | list[float] | None) -> list[float]:
        """The values Optuna stores: one, several (in `spec.metrics` order), or a value even with
        nothing to score (see `store.NO_VALUE`)."""
        values = None if value is None else list(value) if isinstance(value, list | tuple) else [value]
        return stored_values(TrialState.COMPLETE, values)

    def _completed_as(self, trial_id: int, values: list[float]) -> bool:
        """After UpdateFinishedTrialError on completing a trial: did the write land all the same?
        Optuna's journal storage can raise, in this write, the error of an earlier write left
        unreplayed from a thread with the same id (see `claiming.TrialClaims._own`);
        `RetryingStorage` has replayed the log by now, this write included. COMPLETE with these
        values is this write's, or that of another agent adopting the same finished run with the
        same result: the same outcome."""
        trial = self.store.get_trial(trial_id)
        return trial.state == TrialState.COMPLETE and list(trial.values or []) == list(values)
