"""The claims ledger: budget slots handed out through a companion study's trial numbers.

Trial numbers are dense and unique per study in every Optuna storage, so claim `n` is slot `n`,
handed to exactly one agent. A claim stays RUNNING until its slot's trial exists in the main
study (so the sweep never looks finished while a trial is being created), then turns COMPLETE.
Claims past the budget are parked as WAITING, to be reused if the budget is raised. The claim of a
failed trial creation, or of an agent that died holding one, is voided instead (RUNNING -> FAIL,
atomic) and its slot's trial queued, so no slot of the budget is ever parked while its budget
holds.

That keeps the end of a sweep linear in the number of agents: every agent that races past the
budget parks one claim, and none of them is ever below that budget. Each parking agent first
writes the budget it parked past (`PARKED_PAST`) on the claims study, so an agent lists the
parked claims only once some were parked past a budget smaller than its own (a raised budget).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from optuna.trial import FrozenTrial, TrialState

from .. import compat
from ..search.algorithms import PointSource
from .names import ACTIVE, PARKED_PAST, QUEUED, SLOT, WAITING
from .store import RetryingStorage, finish, take

log = logging.getLogger(__name__)

CLAIM_STALE_SECONDS = 60.0


class ClaimsLedger:
    def __init__(self, store: RetryingStorage, source: PointSource):
        self.store = store
        self.source = source
        self.claims_id: int = -1
        self.exhausted_seen = False  # this agent has seen the last slot of the budget claimed
        self._parked_below = False  # claims were parked past a smaller budget (seen once: for good)
        self._marked: set[int] = set()  # the budgets this agent wrote as parked past
        self._queue_known = False  # QUEUED is there: this agent wrote or saw it (for good)

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
            self.park_past_budget(claim_id)
            self.exhausted_seen = True
        return self._take_parked()

    def _take_parked(self) -> tuple[int, int] | None:
        """A claim parked past a smaller budget that is below this one (a raised budget)."""
        if not self.parked_below_budget():
            return None
        parked = self.store.get_all_trials(self.claims_id, deepcopy=False, states=WAITING)
        for claim in parked:
            if claim.number < self.budget and take(self.store, compat.trial_id(claim)):
                return compat.trial_id(claim), claim.number
        return None

    def park_past_budget(self, claim_id: int) -> None:
        """Keep a claim past the budget for a later, larger budget: the budget it is past is
        written first, so an agent with a larger one knows to look for it."""
        if self.budget not in self._marked:
            self.store.set_study_system_attr(self.claims_id, f"{PARKED_PAST}{self.budget}", True)
            self._marked.add(self.budget)
        try:
            self.store.set_trial_state_values(claim_id, TrialState.WAITING)
        except Exception:  # noqa: BLE001
            log.exception("could not park claim %s", claim_id)

    def parked_below_budget(self) -> bool:
        """May a claim below this budget be parked? Only once claims were parked past a smaller
        budget: one read of the claims study's attributes until then, none after."""
        if not self._parked_below:
            marks = self.store.get_study_system_attrs(self.claims_id)
            self._parked_below = any(
                key.startswith(PARKED_PAST) and int(key[len(PARKED_PAST) :]) < self.budget for key in marks
            )
        return self._parked_below

    def mark_queued(self) -> None:
        """Before a trial is queued (WAITING) in the main study: the sweep has a queue from now
        on (`QUEUED` on the claims study), so agents claiming fresh slots look at it."""
        if not self._queue_known:
            self.store.set_study_system_attr(self.claims_id, QUEUED, True)
            self._queue_known = True

    def queue_exists(self) -> bool:
        """Was a trial ever queued in the main study? One read of the claims study's few
        attributes until seen, none after. A queue an earlier version left has no mark."""
        if not self._queue_known:
            self._queue_known = QUEUED in self.store.get_study_system_attrs(self.claims_id)
        return self._queue_known

    def void(self, claim_id: int) -> bool:
        """End a claim whose slot gets no trial from its agent (atomic RUNNING -> FAIL: of several
        agents voiding it, one wins). The winner must queue the slot's trial; if it dies first,
        the slot is orphaned and queued by whoever finds it so (`orphaned_slots`)."""
        return finish(self.store, claim_id, TrialState.FAIL)

    def settle(self, claim_id: int, trial_number: int) -> bool:
        """The slot's trial exists (as `trial_number`): the claim is done."""
        return finish(self.store, claim_id, TrialState.COMPLETE, [float(trial_number)])

    def active_below_budget(self, states: tuple[TrialState, ...] = ACTIVE) -> bool:
        """Is a slot of the budget being claimed or parked (of the claims in `states`)?

        Parked claims are listed only when some may be below this budget: the hundreds parked
        past it at the end of a large sweep are never read. Claims are read in one query, so a
        claim moving between WAITING and RUNNING is seen in one of them.
        """
        if TrialState.WAITING in states and not self.parked_below_budget():
            states = tuple(s for s in states if s != TrialState.WAITING)
            if not states:
                return False
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
                self.park_past_budget(compat.trial_id(claim))  # its agent died parking it
            elif self.void(compat.trial_id(claim)):
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
