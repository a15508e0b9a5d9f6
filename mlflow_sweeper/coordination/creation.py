"""Creating a sweep's trials: a slot's first trial (its grid point, or a point the slot's sampler
suggests), RUNNING for this agent or WAITING for any, and re-runs queued with their point fixed."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import compat
from ..search.algorithms import PointSource
from ..search.space import suggest_point
from .ledger import ClaimsLedger
from .liveness import Heartbeat
from .names import ATTEMPT, FIRST_ATTEMPT, LOST, REPLACES_RUN, RUN_ATTR, SLOT
from .policy import attempt_of, first_attempt_of, lost_count
from .store import RetryingStorage, set_reason, trial_template


@dataclass
class Work:
    """A trial this agent owns: RUNNING in the main study, parameters fixed.

    `claim_id` is the claim of a fresh slot until it is settled, and `run_recorded` tells whether
    `run_id` is in the storage yet: both are written once the trial is launched (`launched`),
    while its process starts, instead of before it.
    """

    trial_id: int
    number: int
    slot: int
    attempt: int
    params: dict
    first_attempt: int = 1  # the attempt that opened this set of attempts (see policy.py)
    losses: int = 0  # the times the point's agent was lost so far (see policy.py)
    replaces_run: str | None = None
    run_id: str | None = None
    claim_id: int | None = None
    run_recorded: bool = False

    @classmethod
    def of(cls, trial: FrozenTrial) -> Work:
        """The work a stored trial stands for: a re-run taken from the queue, or a dead agent's
        trial whose finished run is adopted (its run id recorded already)."""
        run_id = trial.user_attrs.get(RUN_ATTR)
        return cls(
            trial_id=compat.trial_id(trial),
            number=trial.number,
            slot=int(trial.system_attrs[SLOT]),
            attempt=attempt_of(trial),
            params=dict(trial.params),
            first_attempt=first_attempt_of(trial),
            losses=lost_count(trial),
            replaces_run=trial.system_attrs.get(REPLACES_RUN),
            run_id=run_id,
            run_recorded=run_id is not None,
        )


class TrialFactory:
    """Makes the trials of one study (`study_id`, set once the study is attached)."""

    def __init__(
        self,
        store: RetryingStorage,
        source: PointSource,
        heartbeat: Heartbeat,
        identity: str,
        ledger: ClaimsLedger,
    ):
        self.store = store
        self.ledger = ledger
        self.source = source
        self.heartbeat = heartbeat
        self.identity = identity
        self.study_id: int = -1
        self._study: optuna.Study | None = None
        self._lock = threading.Lock()

    def create(self, slot: int) -> Work:
        """The slot's first trial, RUNNING for this agent (its attempt, 1, is not written: a
        trial without one is a first attempt, and every attribute costs the creation, which holds
        the study's lock, two more queries)."""
        attrs = {SLOT: slot, **self.heartbeat.owner_attrs()}
        params = self.source.fixed_point(slot)
        if params is not None:
            trial_id, number = self.create_with(params, attrs, TrialState.RUNNING)
        else:
            trial_id, params = self._sample(slot, attrs)
            number = self.store.get_trial_number_from_id(trial_id)
        return Work(trial_id=trial_id, number=number, slot=slot, attempt=1, params=params)

    def queue_slot(self, slot: int) -> None:
        """The first trial of a slot whose claim was voided, queued (WAITING) for any agent: its
        grid point, or a point sampled here, with the slot's own sampler."""
        self.ledger.mark_queued()
        attrs = {SLOT: slot, ATTEMPT: 1}
        params = self.source.fixed_point(slot)
        if params is not None:
            self.create_with(params, attrs, TrialState.WAITING)
            return
        trial_id, _ = self._sample(slot, {**attrs, **self.heartbeat.owner_attrs()})
        self.store.set_trial_state_values(trial_id, TrialState.WAITING)

    def queue_rerun(
        self,
        params: dict,
        slot: int,
        attempt: int,
        old_run: str | None,
        first_attempt: int = 1,
        losses: int = 0,
    ) -> None:
        """The next attempt of a slot's point, queued (WAITING) for any agent; `old_run` is the
        run it replaces; `losses`: the times the point's agent was lost so far."""
        self.ledger.mark_queued()
        attrs = {SLOT: slot, ATTEMPT: attempt}
        if first_attempt != 1:
            attrs[FIRST_ATTEMPT] = first_attempt
        if losses:
            attrs[LOST] = losses
        if old_run:
            attrs[REPLACES_RUN] = old_run
        self.create_with(params, attrs, TrialState.WAITING)

    def create_with(self, params: dict, attrs: dict, state: TrialState) -> tuple[int, int]:
        """A trial with its point fixed: (its id, its number)."""
        trial = trial_template(state, params, self.source.distributions_for(params), attrs)
        return self.store.create_trial_numbered(self.study_id, trial)

    def _sample(self, slot: int, attrs: dict) -> tuple[int, dict]:
        """Create a trial and ask the sampler (TPE, continuous random) for its parameters.

        Goes through the Study's own (caching) storage, as `Study.ask` does, with the trial
        history re-read for every sample. The slot is recorded only once sampling succeeded,
        so a failed sample leaves a failed trial that owns no point.
        """
        with self._lock:
            if self._study is None:
                self._study = optuna.load_study(study_name=self.identity, storage=self.store.raw)
            study = self._study
            study.sampler = self.source.sampler(slot)
            compat.forget_cached_trials(study)
            storage = RetryingStorage(compat.study_storage(study))
            unowned = {k: v for k, v in attrs.items() if k != SLOT}
            trial_id = storage.create_new_trial(
                self.study_id, template_trial=trial_template(TrialState.RUNNING, {}, {}, unowned)
            )
            try:
                # Define-by-run: a conditional parameter is asked only when its condition holds.
                params = suggest_point(optuna.Trial(study, trial_id), self.source.config.space)
            except BaseException as exc:
                set_reason(self.store, trial_id, f"sampling failed: {exc}")
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
                raise
            storage.set_trial_system_attr(trial_id, SLOT, slot)
            return trial_id, params
