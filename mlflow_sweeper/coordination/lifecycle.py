"""The trial lifecycle: claim (a re-run or a fresh slot), run, end, re-queue; trials are made by
`creation.TrialFactory`.

Re-runs (retries, trials of dead or interrupted agents) are WAITING trials of the main study with
the same slot and parameters; taking one is Optuna's atomic WAITING -> RUNNING update. A failed
point is re-queued before its trial is failed, so the sweep never looks finished in between.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from .. import compat
from ..constraints import satisfied
from ..search.algorithms import PointSource
from .creation import TrialFactory, Work
from .ledger import ClaimsLedger
from .liveness import Heartbeat
from .names import NO_RETRY, QUIT, RUN_ATTR, SLOT, TARGET_REACHED, WAITING, WARM_SLOTS
from .policy import RetryPolicy, attempt_of, first_attempt_of
from .store import RetryingStorage, finish, set_reason, stored_values, take

log = logging.getLogger(__name__)

WAITING_CHECK_SECONDS = 0.5


class TrialLifecycle:
    def __init__(
        self,
        store: RetryingStorage,
        ledger: ClaimsLedger,
        source: PointSource,
        heartbeat: Heartbeat,
        policy: RetryPolicy,
        identity: str,
    ):
        self.store = store
        self.ledger = ledger
        self.source = source
        self.heartbeat = heartbeat
        self.policy = policy
        self.factory = TrialFactory(store, source, heartbeat, identity, ledger)
        self._waiting_checked = -math.inf
        self._target_seen = False
        self._warm: dict[int, int] | None = None

    @property
    def study_id(self) -> int:
        """The study's id: the factory's, which `attach` sets once the study is created or found."""
        return self.factory.study_id

    def attach(self, study_id: int) -> None:
        self.factory.study_id = study_id

    # ---- claiming --------------------------------------------------------------------------

    def claim(self) -> Work | None:
        """The next trial for this agent: a re-run first, then a fresh slot; None when none is left.

        Re-runs are rare, so while fresh slots last the queue is looked at every
        WAITING_CHECK_SECONDS, and only once the sweep says it has one (`ClaimsLedger.queue_exists`:
        one read of a few attributes, instead of the main study's unfinished trials); once no
        fresh slot is left, it is read at every claim. That keeps a fresh claim at three storage
        transactions and a few indexed reads, and agents sharing a process do not queue for its
        trial cache.
        """
        if self.target_reached():
            return None
        now = time.monotonic()
        exhausted = self.ledger.exhausted_seen
        looked = exhausted or now - self._waiting_checked >= WAITING_CHECK_SECONDS
        if looked:
            self._waiting_checked = now
            work = self._pop_waiting() if exhausted or self.ledger.queue_exists() else None
            if work is not None:
                return work
        work = self._claim_fresh()
        if work is None and not looked:
            work = self._pop_waiting()
        return work

    def _pop_waiting(self) -> Work | None:
        waiting = self.store.get_all_trials(self.study_id, deepcopy=False, states=WAITING)
        for trial in waiting:
            if not take(self.store, compat.trial_id(trial)):
                continue
            self._own(compat.trial_id(trial))
            return Work.of(trial)  # a queued re-run: no run yet
        return None

    def _own(self, trial_id: int) -> None:
        """Mark a trial just taken as this agent's. Optuna's journal storage may raise, in this
        write, the UpdateFinishedTrialError of an earlier write left unreplayed from a thread with
        the same id (a heartbeat on a trial finished since). `RetryingStorage` replays what a
        failed call leaves; a call made outside it (a sampler's, Optuna's own) may still leave
        one. The trial just taken is running, so that error is not this write's: made again."""
        for key, value in self.heartbeat.owner_attrs().items():
            try:
                self.store.set_trial_system_attr(trial_id, key, value)
            except UpdateFinishedTrialError:
                self.store.set_trial_system_attr(trial_id, key, value)

    def _claim_fresh(self) -> Work | None:
        while True:
            claimed = self.ledger.claim_slot()
            if claimed is None:
                return None
            claim_id, slot = claimed
            done_by = self._warm_slots().get(slot)
            if done_by is None:
                break
            self.ledger.settle(claim_id, done_by)  # a warm-started result is this grid point's
        try:
            work = self.factory.create(slot)
        except BaseException:
            self._give_back(claim_id, slot)
            raise
        work.claim_id = claim_id  # settled by `launched`: the trial exists, the slot is taken
        return work

    def _give_back(self, claim_id: int, slot: int) -> None:
        """The slot's trial could not be created here: void the claim and queue the slot's trial
        for any agent. Should queueing fail too, the slot is orphaned, and queued by whichever
        agent finds it so once the sweep looks finished."""
        if not self.ledger.void(claim_id):
            return
        try:
            self.factory.queue_slot(slot)
        except Exception as exc:  # noqa: BLE001 - the orphan path queues it later
            log.warning("could not queue slot %s after its trial's creation failed: %s", slot, exc)

    def _warm_slots(self) -> dict[int, int]:
        """Grid slots whose point an earlier result already holds (warm start): written with the
        study, before its parent run, so before any agent claims; read once."""
        if self._warm is None:
            self._warm = warm_slots(self.store, self.study_id)
        return self._warm

    def target_reached(self) -> bool:
        """Has a trial reached `spec.target`? One read of the study's attributes per call while
        it has not (only for a sweep with a target); remembered once seen."""
        if self._target_seen or self.source.config.objective.target is None:
            return self._target_seen
        self._target_seen = TARGET_REACHED in self.store.get_study_system_attrs(self.study_id)
        return self._target_seen

    # ---- running and ending ----------------------------------------------------------------

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
        self._note_target(work, value, constraints)
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
        self._note_target(work, value, constraints)
        return True

    def _write_constraints(self, work: Work, constraints: dict[str, float] | None) -> None:
        """The constraint values (system attrs the samplers read), written before COMPLETE."""
        for key, violation in (constraints or {}).items():
            self.store.set_trial_system_attr(work.trial_id, key, violation)

    def _note_target(
        self, work: Work, value: float | list[float] | None, constraints: dict[str, float] | None
    ) -> None:
        """A feasible value reaching `spec.target` is recorded in the study: no agent claims again."""
        one_value = not isinstance(value, list | tuple)
        if satisfied(constraints or {}) and one_value and self.source.config.objective.reached(value):
            self.store.set_study_system_attr(self.study_id, TARGET_REACHED, work.number)
            self._target_seen = True

    @staticmethod
    def _stored(value: float | list[float] | None) -> list[float]:
        """The values Optuna stores: one, several (in `spec.metrics` order), or a value even with
        nothing to score (see `store.NO_VALUE`)."""
        values = None if value is None else list(value) if isinstance(value, list | tuple) else [value]
        return stored_values(TrialState.COMPLETE, values)

    def _completed_as(self, trial_id: int, values: list[float]) -> bool:
        """After UpdateFinishedTrialError on completing a trial: did the write land all the same?
        Optuna's journal storage can raise, in this write, the error of an earlier write left
        unreplayed from a thread with the same id (see `_own`); `RetryingStorage` has replayed
        the log by now, this write included. COMPLETE with these values is this write's, or that
        of another agent adopting the same finished run with the same result: the same outcome."""
        trial = self.store.get_trial(trial_id)
        return trial.state == TrialState.COMPLETE and list(trial.values or []) == list(values)

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
            self.factory.queue_rerun(work.params, work.slot, attempt, old_run, work.first_attempt)
        elif not retry_it:  # on purpose: no agent re-queues it as a lost retry
            with contextlib.suppress(UpdateFinishedTrialError):
                self.store.set_trial_system_attr(work.trial_id, NO_RETRY, True)
        finish(self.store, work.trial_id, TrialState.FAIL)
        return requeued

    def requeue_trial(self, trial: FrozenTrial, afresh: bool = False, again: bool = False) -> None:
        """Queue the next attempt of a failed trial's point; `afresh`: with a fresh set of attempts
        (a point failed for good), numbered on from the attempts it spent; `again`: the same
        attempt once more (it was interrupted, not failed)."""
        attempt = attempt_of(trial) + (0 if again else 1)
        self.factory.queue_rerun(
            dict(trial.params),
            int(trial.system_attrs[SLOT]),
            attempt,
            trial.user_attrs.get(RUN_ATTR),
            attempt if afresh else first_attempt_of(trial),
        )

    def requeue_if_allowed(self, trial: FrozenTrial) -> bool:
        """Re-queue a reclaimed trial's point when it has attempts left; True if re-queued. One
        its agent quit at once (a second Ctrl-C) was interrupted: the same attempt again."""
        if SLOT not in trial.system_attrs:
            return False
        if trial.system_attrs.get(QUIT):
            self.requeue_trial(trial, again=True)
            return True
        if not self.policy.may_retry_trial(trial):
            return False
        self.requeue_trial(trial)
        return True


def warm_slots(store, study_id: int) -> dict[int, int]:
    """{slot: trial number}: the grid points earlier results hold (written by a warm start)."""
    text = store.get_study_system_attrs(study_id).get(WARM_SLOTS)
    return {int(k): int(v) for k, v in json.loads(text).items()} if text else {}
