"""The claims ledger: budget slots handed out through a companion study's trial numbers.

Trial numbers are dense and unique per study in every Optuna storage, so claim `n` is slot `n`,
handed to exactly one agent. A claim stays RUNNING until its slot's trial exists in the main
study (so the sweep never looks finished while a trial is being created), then turns COMPLETE.
Claims past the budget are parked as WAITING, to be reused if the budget is raised; so are the
claims of a failed trial creation or of an agent that died holding one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from optuna.trial import FrozenTrial, TrialState

from .. import compat
from ..search.algorithms import PointSource
from .names import ACTIVE, SLOT, WAITING
from .store import RetryingStorage, finish, take

log = logging.getLogger(__name__)

CLAIM_STALE_SECONDS = 60.0


class ClaimsLedger:
    def __init__(self, store: RetryingStorage, source: PointSource):
        self.store = store
        self.source = source
        self.claims_id: int = -1
        self.exhausted_seen = False  # this agent has seen the last slot of the budget claimed

    @property
    def budget(self) -> int:
        return self.source.budget

    def claim_slot(self) -> tuple[int, int] | None:
        """A budget slot for this agent as (claim trial id, slot): a new claim while the budget
        lasts, then parked ones.

        One indexed lookup ("is the budget's last claim taken?") comes first, so that an agent
        arriving at the end of the sweep does not add a claim past the budget: with hundreds of
        agents, each would leave one, and every idle look of every agent lists them. Only agents
        racing for the last slots still go past it; such a claim is parked (WAITING) for a later,
        larger budget, and from then on this agent only looks for parked claims below the budget.
        """
        if not self.exhausted_seen and self.slots_exhausted():
            self.exhausted_seen = True
        if not self.exhausted_seen:
            claim_id, number = self.store.create_trial_numbered(self.claims_id)
            if number < self.budget:
                self.exhausted_seen = number == self.budget - 1
                return claim_id, number
            self.park(claim_id)
            self.exhausted_seen = True
        return self._take_parked()

    def _take_parked(self) -> tuple[int, int] | None:
        """A parked claim below the budget: left by a smaller budget or a failed trial creation."""
        parked = self.store.get_all_trials(self.claims_id, deepcopy=False, states=WAITING)
        for claim in parked:
            if claim.number < self.budget and take(self.store, compat.trial_id(claim)):
                return compat.trial_id(claim), claim.number
        return None

    def park(self, claim_id: int) -> None:
        """Give a slot back, for another agent to run."""
        try:
            self.store.set_trial_state_values(claim_id, TrialState.WAITING)
        except Exception:  # noqa: BLE001
            log.exception("could not park claim %s", claim_id)

    def settle(self, claim_id: int, trial_number: int) -> bool:
        """The slot's trial exists (as `trial_number`): the claim is done."""
        return finish(self.store, claim_id, TrialState.COMPLETE, [float(trial_number)])

    def active_below_budget(self, states: tuple[TrialState, ...] = ACTIVE) -> bool:
        """Is a slot of the budget being claimed or parked (or in `states`)?"""
        claims = self.store.get_all_trials(self.claims_id, deepcopy=False, states=states)
        return any(claim.number < self.budget for claim in claims)

    def slots_exhausted(self) -> bool:
        """Has every slot of the budget been claimed? Claim numbers are dense, so it is enough
        that claim `budget - 1` exists: one indexed lookup, not a count of every trial."""
        try:
            self.store.get_trial_id_from_study_id_trial_number(self.claims_id, self.budget - 1)
        except KeyError:
            return False
        return True

    def release_stale(self, stale_after: float, trials: Callable[[], list[FrozenTrial]]) -> list[int]:
        """Claims an agent died holding, between claiming a slot and creating its trial.

        A live agent settles its claim within moments, so a claim RUNNING for CLAIM_STALE_SECONDS
        (or stale_after, if shorter) is abandoned: settled if its slot's trial exists after all,
        otherwise voided (parked, if past the budget). Returns the slots this agent voided: it
        must queue their trials.

        Voiding is Optuna's atomic RUNNING -> FAIL, so of several agents releasing one claim at
        once exactly one queues its slot. (Parking the claim, RUNNING -> WAITING, has no atomic
        form: two agents could both park it around a third taking it, and hand it out twice.)
        """
        patience = min(stale_after, CLAIM_STALE_SECONDS)
        now = dt.datetime.now()
        running = self.store.get_all_trials(self.claims_id, deepcopy=False, states=(TrialState.RUNNING,))
        stale = [
            c for c in running
            if c.datetime_start is not None and (now - c.datetime_start).total_seconds() > patience
        ]  # fmt: skip
        if not stale:
            return []
        by_slot = {t.system_attrs.get(SLOT): t for t in trials() if SLOT in t.system_attrs}
        voided = []
        for claim in stale:
            trial = by_slot.get(claim.number)
            if trial is not None:
                self.settle(compat.trial_id(claim), trial.number)
            elif claim.number >= self.budget:
                self.park(compat.trial_id(claim))  # its agent died parking it: no slot of this budget
            elif finish(self.store, compat.trial_id(claim), TrialState.FAIL):
                voided.append(claim.number)
        return voided

    def orphaned_slots(self, trials: list[FrozenTrial]) -> dict[int, dt.datetime | None]:
        """Slots of the budget whose claim was voided and whose trial was never queued (the agent
        that voided it died in between), with when each was voided. One read of the voided claims,
        only when the sweep looks finished."""
        owned = {t.system_attrs[SLOT] for t in trials if SLOT in t.system_attrs}
        voided = self.store.get_all_trials(self.claims_id, deepcopy=False, states=(TrialState.FAIL,))
        lost = [c for c in voided if c.number < self.budget and c.number not in owned]
        return {c.number: c.datetime_complete for c in lost}
