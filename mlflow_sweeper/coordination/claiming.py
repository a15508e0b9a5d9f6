"""Claiming a trial: a queued re-run first, then a fresh slot of the budget.

Re-runs (retries, trials of dead or interrupted agents) are WAITING trials of the main study with
the same slot and parameters; taking one is Optuna's atomic WAITING -> RUNNING update. A fresh
slot is claimed through the ledger, and its trial made by `creation.TrialFactory`.
"""

from __future__ import annotations

import json
import logging
import math
import time

from optuna.exceptions import UpdateFinishedTrialError

from .. import compat
from .creation import TrialFactory, Work
from .ledger import ClaimsLedger
from .liveness import Heartbeat
from .names import WAITING, WARM_SLOTS
from .store import RetryingStorage, take
from .target import TargetMark

log = logging.getLogger(__name__)

WAITING_CHECK_SECONDS = 0.5


class TrialClaims:
    """The next trial for this agent."""

    def __init__(
        self,
        store: RetryingStorage,
        ledger: ClaimsLedger,
        heartbeat: Heartbeat,
        factory: TrialFactory,
        target: TargetMark,
    ):
        self.store = store
        self.ledger = ledger
        self.heartbeat = heartbeat
        self.factory = factory
        self.target = target
        self._waiting_checked = -math.inf
        self._warm: dict[int, int] | None = None

    def claim(self) -> Work | None:
        """A re-run first, then a fresh slot; None when none is left.

        Re-runs are rare, so while fresh slots last the queue is looked at every
        WAITING_CHECK_SECONDS, and only once the sweep says it has one (`ClaimsLedger.queue_exists`:
        one read of a few attributes, instead of the main study's unfinished trials); once no
        fresh slot is left, it is read at every claim. That keeps a fresh claim at three storage
        transactions and a few indexed reads, and agents sharing a process do not queue for its
        trial cache.
        """
        if self.target.reached():
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
        waiting = self.store.get_all_trials(self.factory.study_id, deepcopy=False, states=WAITING)
        for trial in waiting:
            if not take(self.store, compat.trial_id(trial)) or not self._own(compat.trial_id(trial)):
                continue
            return Work.of(trial)  # a queued re-run: no run yet
        return None

    def _own(self, trial_id: int) -> bool:
        """Mark a trial just taken as this agent's; False when it is no longer running: until the
        mark lands, the trial has no owner, and an agent that finds it so past stale_after ends
        it as lost (its point is queued again).

        Optuna's journal storage may also raise, in this write, the UpdateFinishedTrialError of an
        earlier write left unreplayed from a thread with the same id (a heartbeat on a trial
        finished since). `RetryingStorage` replays what a failed call leaves; a call made outside
        it (a sampler's, Optuna's own) may still leave one. While the trial just taken is running,
        that error is not this write's: made again."""
        for key, value in self.heartbeat.owner_attrs().items():
            try:
                self.store.set_trial_system_attr(trial_id, key, value)
            except UpdateFinishedTrialError:
                if self.store.get_trial(trial_id).state.is_finished():
                    log.info("trial %s was ended by another agent as it was taken: left to it", trial_id)
                    return False
                self.store.set_trial_system_attr(trial_id, key, value)
        return True

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
            self._warm = warm_slots(self.store, self.factory.study_id)
        return self._warm


def warm_slots(store, study_id: int) -> dict[int, int]:
    """{slot: trial number}: the grid points earlier results hold (written by a warm start)."""
    text = store.get_study_system_attrs(study_id).get(WARM_SLOTS)
    return {int(k): int(v) for k, v in json.loads(text).items()} if text else {}
