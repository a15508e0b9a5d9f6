"""`SweepStudy`: one sweep as seen by one agent, a thin facade over the protocol's parts."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from .. import compat
from ..config import SweepConfig
from ..search.algorithms import PointSource
from ..secrets import redact
from . import tallies
from .closing import CloseElection
from .companions import ensure_companion, missing_studies, refuse_a_lost_ledger
from .creation import Work
from .identity import SweepIdentity, direction_of
from .ledger import ClaimsLedger
from .lifecycle import TrialLifecycle, warm_slots
from .liveness import Heartbeat, adopt_nothing, fail_stale, fail_stale_trials
from .names import ACTIVE, INFEASIBLE, NO_RETRY, QUIT, WAITING, claims_study_name
from .policy import RetryPolicy
from .restart import NO_HOOKS, StartedOver, StartOverHooks
from .store import RetryingStorage, read_trials, scores_trials
from .tallies import Progress


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
        self.identity = SweepIdentity(self.store, config)
        log_dir = str(config.log_dir)
        log_dir_shown = log_dir if redact(log_dir) == log_dir else None  # no `${VAR}` value in Optuna
        self.liveness = Heartbeat(self.store, agent, config.stale_after, log_dir_shown)
        self._build_parts()

    def _build_parts(self) -> None:
        """The parts that hold the study's (and its companions') ids: built again when the
        sweep starts over under new studies."""
        source, config = self.source, self.config
        self.ledger = ClaimsLedger(self.store, source)
        self.lifecycle = TrialLifecycle(
            self.store, self.ledger, source, self.liveness, self.policy, config.identity
        )
        self.closing = CloseElection(self.store, config.identity, self.liveness)
        self.missing_companions: list[str] = []  # found missing by `find` (and made again)
        self._scored: bool | None = None  # has the stored sweep an objective (`trials`)

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
            return self.identity.record_parent(create_parent())
        return self.identity.wait_for_parent(create_parent, parent_state)

    def _attach(self) -> None:
        self.lifecycle.attach(self.identity.study_id)
        identity = self.config.identity
        self.ledger.claims_id = ensure_companion(self.store, claims_study_name(identity), identity)

    def parent_run_id(self) -> str | None:
        return self.identity.parent_run_id()

    def check_drift(self, hooks: StartOverHooks = NO_HOOKS) -> StartedOver | None:
        """Refuse a changed config, or start the sweep over when it has learned nothing yet."""
        started_over = self.identity.check_drift(hooks)
        self._build_parts()  # the studies may be new ones (started over, here or by another agent)
        self._attach()
        return started_over

    # ---- claiming and running trials -------------------------------------------------------

    @property
    def budget(self) -> int:
        return self.source.budget

    @property
    def exhausted_seen(self) -> bool:
        """Has this agent seen the last slot of the budget claimed (or the target reached)?"""
        return self.ledger.exhausted_seen or self.target_reached()

    def target_reached(self) -> bool:
        """Has a completed trial reached `spec.target`? Then no slot is owed a trial any more."""
        return self.lifecycle.target_reached()

    def claim(self) -> Work | None:
        return self.lifecycle.claim()

    def bind_run(self, work: Work, run_id: str) -> None:
        """The trial's run exists: written to the storage by `launched`, once its process starts."""
        self.lifecycle.bind_run(work, run_id)

    def launched(self, work: Work) -> None:
        """The trial's process is starting: write what its creation still owes the storage."""
        self.lifecycle.launched(work)

    def heartbeat(self, trial_ids: Iterable[int]) -> None:
        self.liveness.record(trial_ids)

    def complete(
        self, work: Work, value: float | list[float] | None, constraints: dict[str, float] | None = None
    ) -> None:
        self.lifecycle.complete(work, value, constraints)

    def adopt(
        self, work: Work, value: float | list[float] | None, constraints: dict[str, float] | None = None
    ) -> bool:
        """A dead agent's trial whose run had finished: COMPLETE with that result, when this agent
        wins the update; False when another agent ended the trial first."""
        return self.lifecycle.adopt(work, value, constraints)

    def prune(self, work: Work) -> bool:
        """The pruner stopped the trial: PRUNED in Optuna, counted in the budget, not retried."""
        return self.lifecycle.prune(work)

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
        return self.lifecycle.fail(
            work, reason, retry_it=retry_it, count_attempt=count_attempt, old_run=old_run
        )

    def mark_infeasible(self, work: Work, reason: str) -> None:
        """Before the trial is failed: its point cannot run (a result, not a failure)."""
        self._mark_infeasible(work.trial_id, reason)

    def _mark_infeasible(self, trial_id: int, reason: str) -> None:
        self.store.set_trial_user_attr(trial_id, INFEASIBLE, redact(reason))

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

    def requeue_trial(self, trial: FrozenTrial, afresh: bool = False) -> None:
        self.lifecycle.requeue_trial(trial, afresh)

    # ---- liveness --------------------------------------------------------------------------

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
            requeued[compat.trial_id(trial)] = self.lifecycle.requeue_if_allowed(trial)

        failed = fail_stale_trials(self.store, self.study_id, self.liveness, own_running, requeue, adopt)
        return [(trial, why, requeued[compat.trial_id(trial)]) for trial, why in failed]

    def reclaim_trial(
        self,
        trial: FrozenTrial,
        why: str,
        *,
        retry: bool = True,
        again: bool = False,
        infeasible: str | None = None,
    ) -> bool | None:
        """Fail one trial whose agent is gone, as `reclaim_stale` does, and re-queue its point when
        it may run again; whether it was re-queued, or None when another agent ended it first.
        `retry` False: its trial ended in a way another attempt would not cure (`infeasible`: why
        its point cannot run), so it is not re-queued; `again`: it was interrupted, not failed, so
        its point is re-queued as the same attempt."""
        trial_id = compat.trial_id(trial)
        with contextlib.suppress(UpdateFinishedTrialError):  # ended meanwhile: the update loses
            if infeasible is not None:
                self._mark_infeasible(trial_id, infeasible)
            if not retry:
                self.store.set_trial_system_attr(trial_id, NO_RETRY, True)
        if not fail_stale(self.store, trial, why):
            return None
        if again:
            self.lifecycle.requeue_trial(trial, again=True)
            return True
        return retry and self.lifecycle.requeue_if_allowed(trial)

    def release_stale_claims(self) -> list[int]:
        """Queue the trials of slots whose agents died between claiming them and creating their
        trial; the slots queued."""
        voided = self.ledger.release_stale(self.config.stale_after, self.trials)
        for slot in voided:
            self.queue_slot(slot)
        return voided

    # ---- tallies ---------------------------------------------------------------------------

    def has_active(self) -> bool:
        """Is any trial running or queued, or any slot being claimed or parked below the budget?

        Once the target is reached, only what is running counts: queued re-runs and unclaimed
        slots are no longer owed.
        """
        states = (TrialState.RUNNING,) if self.target_reached() else ACTIVE
        if self.ledger.active_below_budget(states):
            return True
        return bool(self.store.get_all_trials(self.study_id, deepcopy=False, states=states))

    def has_queued(self) -> bool:
        """Is a trial queued for any agent to take (a re-run), and still owed (no target reached)?"""
        if self.target_reached():
            return False
        return bool(self.store.get_all_trials(self.study_id, deepcopy=False, states=WAITING))

    def slots_exhausted(self) -> bool:
        return self.target_reached() or self.ledger.slots_exhausted()

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

    def is_complete(self) -> bool:
        return self.complete_trials() is not None

    def trials(self) -> list[FrozenTrial]:
        """The sweep's trials; without an objective, with no values (see `store.NO_VALUE`)."""
        if self._scored is None:  # the stored sweep's, read once (a start over builds it again)
            self._scored = scores_trials(self.store, self.study_id)
        return read_trials(self.store, self.study_id, self._scored)

    def unresolved_slots(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        if self.target_reached():
            return []
        return tallies.unresolved_slots(trials, self.policy)

    def orphaned_slots(self, trials: list[FrozenTrial]) -> dict[int, dt.datetime | None]:
        """Slots whose claim was voided by an agent that died before queueing their trial, with
        when each was voided (see `ClaimsLedger.release_stale`)."""
        if self.target_reached():
            return {}
        return self.ledger.orphaned_slots(trials)

    def queue_slot(self, slot: int) -> None:
        self.lifecycle.factory.queue_slot(slot)

    def failed_for_good(self, trials: list[FrozenTrial], *, infeasible: bool = True) -> list[FrozenTrial]:
        """The points that failed after all their attempts; `infeasible=False` leaves out the
        infeasible ones, which are results rather than failures."""
        failed = tallies.failed_for_good(trials)
        return failed if infeasible else tallies.needing_attention(failed)

    def progress(self) -> Progress:
        trials = self.trials()
        best = tallies.best(trials, self.direction) if self.config.objective.metric is not None else None
        return tallies.progress(trials, self.budget, best)

    def best_trial(self) -> FrozenTrial | None:
        """The best feasible COMPLETE trial (all of them are feasible without constraints)."""
        if self.config.objective.metric is None:
            return None
        return tallies.best(self.trials(), self.direction)

    # ---- closing ---------------------------------------------------------------------------

    def elect_closer(self) -> bool:
        """Call once the sweep is complete: True for exactly one agent per close epoch, which must
        run the close actions and then call `mark_closed()`; False for every other caller."""
        return self.closing.elect()

    def mark_closed(self) -> None:
        self.closing.mark_closed()

    def is_closed(self) -> bool:
        return self.closing.is_closed()

    def close_begun(self) -> bool:
        """An agent is closing the sweep, or has closed it."""
        return self.closing.is_begun()

    def reopen(self) -> int:
        """Let the sweep be closed again (after more trials were queued); returns the new epoch."""
        return self.closing.reopen()
