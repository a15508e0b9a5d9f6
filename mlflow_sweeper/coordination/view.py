"""What the storages say about a sweep now: its trials, and what they add up to (the tallies
are pure functions in `tallies`; this part reads what they are given)."""

from __future__ import annotations

import datetime as dt

from optuna.trial import FrozenTrial, TrialState

from ..config import SweepConfig
from ..search.algorithms import PointSource
from . import tallies
from .creation import TrialFactory
from .identity import direction_of
from .ledger import ClaimsLedger
from .names import ACTIVE, WAITING
from .policy import RetryPolicy
from .store import RetryingStorage, read_trials, scores_trials
from .tallies import Progress
from .target import TargetMark


class SweepView:
    def __init__(
        self,
        store: RetryingStorage,
        config: SweepConfig,
        source: PointSource,
        ledger: ClaimsLedger,
        factory: TrialFactory,
        policy: RetryPolicy,
        target: TargetMark,
    ):
        self.store = store
        self.config = config
        self.source = source  # its budget
        self.ledger = ledger
        self.factory = factory  # holds the study's id once it is attached
        self.policy = policy
        self.target = target
        self._scored: bool | None = None  # has the stored sweep an objective (`trials`)

    def trials(self) -> list[FrozenTrial]:
        """The sweep's trials; without an objective, with no values (see `store.NO_VALUE`)."""
        if self._scored is None:  # the stored sweep's, read once (a start over builds it again)
            self._scored = scores_trials(self.store, self.factory.study_id)
        return read_trials(self.store, self.factory.study_id, self._scored)

    def has_active(self) -> bool:
        """Is any trial running or queued, or any slot being claimed or parked below the budget?

        Once the target is reached, only what is running counts: queued re-runs and unclaimed
        slots are no longer owed.
        """
        states = (TrialState.RUNNING,) if self.target.reached() else ACTIVE
        if self.ledger.active_below_budget(states):
            return True
        return bool(self.store.get_all_trials(self.factory.study_id, deepcopy=False, states=states))

    def has_queued(self) -> bool:
        """Is a trial queued for any agent to take (a re-run), and still owed (no target reached)?"""
        if self.target.reached():
            return False
        return bool(self.store.get_all_trials(self.factory.study_id, deepcopy=False, states=WAITING))

    def slots_exhausted(self) -> bool:
        return self.target.reached() or self.ledger.slots_exhausted()

    def is_finished(self) -> bool:
        """Every slot of the budget claimed, and nothing running or queued (claims checked first)."""
        return self.slots_exhausted() and not self.has_active()

    def complete_trials(self) -> list[FrozenTrial] | None:
        """The sweep's trials once it is finished and no failed point is still owed its re-run;
        None before. One scan, only at the end."""
        if not self.is_finished():
            return None
        trials = self.trials()
        return None if self.unresolved_slots(trials) or self.orphaned_slots(trials) else trials

    def unresolved_slots(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        if self.target.reached():
            return []
        return tallies.unresolved_slots(trials, self.policy)

    def orphaned_slots(self, trials: list[FrozenTrial]) -> dict[int, dt.datetime | None]:
        """Slots whose claim was voided by an agent that died before queueing their trial, with
        when each was voided (see `ClaimsLedger.release_stale`)."""
        if self.target.reached():
            return {}
        return self.ledger.orphaned_slots(trials)

    def progress(self) -> Progress:
        trials = self.trials()
        scored = self.config.objective.metric is not None
        best = tallies.best(trials, direction_of(self.config)) if scored else None
        return tallies.progress(trials, self.source.budget, best)

    def best_trial(self) -> FrozenTrial | None:
        """The best feasible COMPLETE trial (all of them are feasible without constraints)."""
        if self.config.objective.metric is None:
            return None
        return tallies.best(self.trials(), direction_of(self.config))
