"""`SweepStudy`: one sweep as seen by one agent, a thin facade over the protocol's parts: each
method says in a line what it does, the part it hands over to says how."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable

import optuna
from optuna.trial import FrozenTrial

from ..config import SweepConfig
from ..search.algorithms import PointSource
from ..secrets import redact
from . import tallies
from .claiming import TrialClaims, warm_slots
from .closing import CloseElection
from .companions import ensure_companion, missing_studies, refuse_a_lost_ledger
from .creation import TrialFactory, Work
from .ending import TrialEnding
from .fail_fast import FailFastMark
from .identity import SweepIdentity, direction_of
from .ledger import ClaimsLedger
from .liveness import Heartbeat, adopt_nothing
from .names import claims_study_name
from .policy import RetryPolicy
from .reclaiming import Reclaiming
from .restart import NO_HOOKS, StartedOver, StartOverHooks
from .store import RetryingStorage, mark_infeasible
from .tallies import Progress
from .target import TargetMark
from .view import SweepView


class SweepStudy:
    """One sweep's Optuna study, claims ledger and close election, as seen by one agent.

    `storage` is the Optuna storage as given; every call the parts make goes through one
    retrying wrapper of it.
    """

    def __init__(self, storage, config: SweepConfig, source: PointSource, agent: str):
        self.storage = storage
        self.config = config
        self.source = source
        self.agent = agent
        self.store = RetryingStorage(storage)
        self.policy = RetryPolicy(config.max_retries)
        log_dir = functools.partial(_log_dir_shown, config)
        self.liveness = Heartbeat(self.store, agent, config.stale_after, log_dir)
        self.identity = SweepIdentity(self.store, config, self.liveness)
        self._build_parts()

    def _build_parts(self) -> None:
        """The parts that hold the study's (and its companions') ids: built again when the
        sweep starts over under new studies."""
        source, config = self.source, self.config
        store, liveness, policy = self.store, self.liveness, self.policy
        self.ledger = ClaimsLedger(store, source)
        self.factory = TrialFactory(store, source, liveness, config.identity, self.ledger)
        self.target = TargetMark(store, config.objective, self.factory)
        self.fail_fast = FailFastMark(store, self.factory, config.fail_fast)
        self.claims = TrialClaims(store, self.ledger, liveness, self.factory, self.target)
        self.ending = TrialEnding(store, self.ledger, self.factory, policy, self.target)
        self.reclaiming = Reclaiming(store, self.factory, liveness, policy)
        self.view = SweepView(store, config, source, self.ledger, self.factory, policy, self.target)
        self.closing = CloseElection(store, config.identity, liveness)
        self.missing_companions: list[str] = []  # found missing by `find` (and made again)

    # ---- identity --------------------------------------------------------------------------

    @property
    def study_id(self) -> int:
        return self.identity.study_id

    @property
    def claims_id(self) -> int:
        return self.ledger.claims_id

    @property
    def direction(self) -> optuna.study.StudyDirection:
        """The first objective's direction (the only one, unless `spec.metrics` lists several)."""
        return direction_of(self.config)

    def find(self) -> bool:
        """Attach to an existing sweep; False when there is none."""
        if not self.identity.find():
            return False
        self.missing_companions = missing_studies(self.store, [claims_study_name(self.config.identity)])
        self._attach()
        self.hold_warm_slots()
        return True

    def hold_warm_slots(self) -> None:
        """The slots whose points earlier results hold use none of the budget: read once they
        are in (a warm start enters them before the sweep's parent run exists)."""
        self.source.hold(frozenset(warm_slots(self.store, self.study_id)))

    def still_exists(self) -> bool:
        """Is the sweep's study still there (`delete` may run while agents work)?"""
        try:
            self.store.get_study_id_from_name(self.config.identity)
        except KeyError:
            return False
        return True

    def missing_studies(self) -> list[str]:
        """The sweep's studies deleted while this agent holds it: the sweep, its ledger, and its
        close election once this agent has used it."""
        names = [self.config.identity, claims_study_name(self.config.identity)]
        if self.closing.opened:
            names.append(self.closing.name)
        return missing_studies(self.store, names)

    def create_or_find(self, first_records: dict[str, str] | None = None) -> bool:
        """Create the study now (True) or find it; `create_or_attach` then goes on from here."""
        created = self.identity.create_or_find(first_records)
        if not created:
            refuse_a_lost_ledger(self.store, self.config.identity, self.identity.study_id)
        self._attach()
        return created

    def create_or_attach(self, create_parent: Callable[[], str], parent_state: Callable[[str], str]) -> str:
        """Create the sweep or join it; returns the parent run id (exactly one per sweep)."""
        created = self.identity.create_or_find()
        if not created:
            refuse_a_lost_ledger(self.store, self.config.identity, self.identity.study_id)
            self.identity.check_drift()
        self._attach()
        if created:
            return self.identity.parent.record(create_parent())
        return self.identity.parent.wait_for(create_parent, parent_state)

    def _attach(self) -> None:
        self.factory.study_id = self.identity.study_id
        identity = self.config.identity
        self.ledger.claims_id = ensure_companion(self.store, claims_study_name(identity), identity)
        self.fail_fast.remember_found()

    def parent_run_id(self) -> str | None:
        return self.identity.parent.run_id()

    def check_drift(self, hooks: StartOverHooks = NO_HOOKS) -> StartedOver | None:
        """Refuse a changed config, or start the sweep over when it has learned nothing yet."""
        started_over = self.identity.check_drift(hooks)
        self._build_parts()  # the studies may be new ones (started over, here or by another agent)
        self._attach()
        return started_over

    # ---- claiming and running trials: `claiming`, `ending` -----------------------------------

    @property
    def budget(self) -> int:
        return self.source.budget

    @property
    def exhausted_seen(self) -> bool:
        """Has this agent seen the last slot of the budget claimed (or the target reached)?"""
        return self.ledger.exhausted_seen or self.target_reached()

    def fail_fast_fired(self) -> str | None:
        """Why another agent's `fail_fast` stopped the sweep since this agent opened it, or None."""
        return self.fail_fast.fired()

    def mark_fail_fast(self, why: str) -> None:
        """`fail_fast` fired here: every other agent stops starting trials when it next looks."""
        self.fail_fast.note(why)

    def target_reached(self) -> bool:
        """Has a completed trial reached `spec.target`? Then no slot is owed a trial any more."""
        return self.target.reached()

    def claim(self) -> Work | None:
        return self.claims.claim()

    def bind_run(self, work: Work, run_id: str) -> None:
        """The trial's run exists: written to the storage by `launched`, once its process starts."""
        self.ending.bind_run(work, run_id)

    def launched(self, work: Work) -> None:
        """The trial's process is starting: write what its creation still owes the storage."""
        self.ending.launched(work)

    def heartbeat(self, trial_ids: Iterable[int]) -> None:
        self.liveness.record(trial_ids)

    def complete(
        self, work: Work, value: float | list[float] | None, constraints: dict[str, float] | None = None
    ) -> None:
        self.ending.complete(work, value, constraints)

    def adopt(
        self, work: Work, value: float | list[float] | None, constraints: dict[str, float] | None = None
    ) -> bool:
        """A dead agent's trial whose run had finished: COMPLETE with that result, when this agent
        wins the update; False when another agent ended the trial first."""
        return self.ending.adopt(work, value, constraints)

    def prune(self, work: Work) -> bool:
        """The pruner stopped the trial: PRUNED in Optuna, counted in the budget, not retried."""
        return self.ending.prune(work)

    def fail(
        self,
        work: Work,
        reason: str,
        *,
        retry_it: bool,
        count_attempt: bool = True,
        old_run: str | None = None,
    ) -> bool:
        """Fail the trial; re-queue its point first when it may run again. True if re-queued."""
        return self.ending.fail(work, reason, retry_it=retry_it, count_attempt=count_attempt, old_run=old_run)

    def mark_infeasible(self, work: Work, reason: str) -> None:
        """Before the trial is failed: its point cannot run (a result, not a failure)."""
        mark_infeasible(self.store, work.trial_id, reason)

    def requeue_trial(self, trial: FrozenTrial, afresh: bool = False) -> None:
        self.reclaiming.requeue_trial(trial, afresh)

    def requeue_if_allowed(self, trial: FrozenTrial) -> bool:
        """A failed trial's point re-queued as the retry policy says (`RetryPolicy.rerun`)."""
        return self.reclaiming.requeue_if_allowed(trial)

    # ---- agents gone: `reclaiming` ----------------------------------------------------------

    def owner_gone(self, trial: FrozenTrial, now: float) -> str | None:
        return self.reclaiming.owner_gone(trial, now)

    def is_running(self, trial_id: int) -> bool:
        return self.reclaiming.is_running(trial_id)

    def mark_quit(self, trial_ids: Iterable[int]) -> None:
        self.reclaiming.mark_quit(trial_ids)

    def reclaim_stale(
        self, own_running: set[int], adopt: Callable[[FrozenTrial, str], bool] = adopt_nothing
    ) -> list[tuple[FrozenTrial, str, bool]]:
        return self.reclaiming.reclaim_stale(own_running, adopt)

    def reclaim_trial(self, trial: FrozenTrial, why: str, **how) -> bool | None:
        """See `Reclaiming.reclaim_trial` for `how` (retry, again, infeasible, agent_lost)."""
        return self.reclaiming.reclaim_trial(trial, why, **how)

    def release_stale_claims(self) -> list[int]:
        """Queue the trials of slots whose agents died between claiming them and creating their
        trial; the slots queued."""
        voided = self.ledger.release_stale(self.config.stale_after, self.trials)
        for slot in voided:
            self.queue_slot(slot)
        return voided

    def queue_slot(self, slot: int) -> None:
        self.factory.queue_slot(slot)

    # ---- tallies: `view` --------------------------------------------------------------------

    def trials(self) -> list[FrozenTrial]:
        return self.view.trials()

    def has_active(self) -> bool:
        return self.view.has_active()

    def has_queued(self) -> bool:
        return self.view.has_queued()

    def slots_exhausted(self) -> bool:
        return self.view.slots_exhausted()

    def is_finished(self) -> bool:
        return self.view.is_finished()

    def complete_trials(self) -> list[FrozenTrial] | None:
        return self.view.complete_trials()

    def is_complete(self) -> bool:
        return self.view.complete_trials() is not None

    def unresolved_slots(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        return self.view.unresolved_slots(trials)

    def orphaned_slots(self, trials: list[FrozenTrial]) -> dict[int, dt.datetime | None]:
        return self.view.orphaned_slots(trials)

    def progress(self) -> Progress:
        return self.view.progress()

    def best_trial(self) -> FrozenTrial | None:
        return self.view.best_trial()

    @staticmethod
    def failed_for_good(trials: list[FrozenTrial], *, infeasible: bool = True) -> list[FrozenTrial]:
        """The points that failed after all their attempts; `infeasible=False` leaves out the
        infeasible ones, which are results rather than failures."""
        failed = tallies.failed_for_good(trials)
        return failed if infeasible else tallies.needing_attention(failed)

    # ---- closing ---------------------------------------------------------------------------

    def elect_closer(self) -> bool:
        """Call once the sweep is complete: True for exactly one agent per close epoch, which must
        run the close actions and then call `mark_closed()`; False for every other caller."""
        return self.closing.elect()

    def mark_closed(self) -> None:
        self.closing.mark_closed()

    def give_up_close(self, why: str) -> None:
        """The close actions this agent was elected for failed: another election may run them."""
        self.closing.give_up(why)

    def is_closed(self) -> bool:
        return self.closing.is_closed()

    def close_epoch(self) -> int:
        """The current close epoch: a new one means the sweep was re-opened (more to run)."""
        return self.closing.epoch()

    def close_begun(self) -> bool:
        """An agent is closing the sweep, or has closed it."""
        return self.closing.is_begun()

    def reopen(self) -> int:
        """Let the sweep be closed again (after more trials were queued); returns the new epoch."""
        return self.closing.reopen()


def _log_dir_shown(config: SweepConfig) -> str | None:
    """Where this agent's trial logs are, for another agent on the host; None when the path holds
    a `${VAR}` value (none goes into Optuna)."""
    log_dir = str(config.log_dir)
    return log_dir if redact(log_dir) == log_dir else None
