"""The close election: exactly one agent, ever, runs a sweep's close actions per close epoch.

Built on the two operations the rest of the protocol already trusts to be atomic in every Optuna
storage, in a companion study `<identity>#close`:

* An agent that finds no candidate for the current epoch nominates one: a WAITING trial tagged
  with the epoch. Trial numbers are dense, so every agent agrees on the epoch's *token*: its
  lowest-numbered trial that has not failed.
* Whoever wins the atomic WAITING -> RUNNING update of the token is the closer. It beats on the
  token while closing and marks it COMPLETE when done; from then on the epoch is closed.
* A token is taken only from a read that holds every trial numbered below it. Optuna's
  `_CachedStorage` (the gRPC proxy's storage) puts a trial it creates into its cache at once, so a
  read made at the same moment may return that trial without an older one created through another
  proxy worker or agent: a lower-numbered nomination missing, another agent's token would look
  like this epoch's first. Such a read is read again.
* A closer that died (silent for stale_after, or its process gone on this host) has its token
  failed through the atomic RUNNING -> FAIL update; the next token is then taken by exactly one
  of the agents still electing.

Re-opening a sweep (to run more trials) bumps the epoch, a system attribute of the close study:
the next completion elects a new closer.
"""

from __future__ import annotations

import logging
import threading
import time

from optuna.trial import FrozenTrial, TrialState

from .. import compat
from ..errors import StorageError, SweeperError
from .companions import ensure_companion
from .liveness import Heartbeat
from .names import ACTIVE, CLOSE_EPOCH, close_study_name
from .store import RetryingStorage, find_study, finish, set_reason, take, trial_template

log = logging.getLogger(__name__)

MAX_ROUNDS = 50  # each round ends a dead closer's token or nominates one; far more than ever needed
GAP_PAUSE = 0.01  # before reading again a read that lacks a trial below the token


class CloseElection:
    def __init__(self, store: RetryingStorage, identity: str, heartbeat: Heartbeat):
        self.store = store
        self.identity = identity
        self.name = close_study_name(identity)
        self.heartbeat = heartbeat
        self._study_id: int | None = None
        self._held: int | None = None
        self._beating: threading.Event | None = None

    def elect(self) -> bool:
        """True for the one agent that must close the sweep now; False when another agent has
        closed it or is closing it."""
        study_id = self._study(create=True)
        assert study_id is not None
        epoch = self.epoch()
        for _ in range(MAX_ROUNDS):
            every = self.store.get_all_trials(study_id, deepcopy=False)
            trials = of_epoch(every, epoch)
            if any(t.state == TrialState.COMPLETE for t in trials):
                return False
            token = next((t for t in trials if t.state in ACTIVE), None)
            if token is not None and not holds_all_below(every, token.number):
                time.sleep(GAP_PAUSE)  # a trial below the token is not in this read yet
                continue
            if token is None:
                self._nominate(study_id, epoch)
            elif token.state == TrialState.WAITING:
                if take(self.store, compat.trial_id(token)):
                    self._hold(compat.trial_id(token))
                    return True
                # Lost the take (or an error): the next round sees who holds it.
            else:
                why = self.heartbeat.why_stale(token, time.time())
                if why is None:
                    return False
                set_reason(self.store, compat.trial_id(token), f"closing abandoned: {why}")
                if finish(self.store, compat.trial_id(token), TrialState.FAIL):
                    log.warning("%s: the agent closing it is gone (%s); electing another", self.name, why)
        raise StorageError(f"{self.name}: no closer elected after {MAX_ROUNDS} rounds")

    def mark_closed(self) -> None:
        """The close actions are done: end the token COMPLETE, which closes the epoch."""
        if self._held is None:
            raise SweeperError("mark_closed() needs a won elect_closer()")
        if self._beating is not None:
            self._beating.set()
        if not finish(self.store, self._held, TrialState.COMPLETE):
            log.warning("%s: closed after another agent took over the close", self.name)
        self._held = None

    def give_up(self, why: str) -> None:
        """The close actions failed part-way: the token is failed, so that the next election (this
        agent's at its end, or another's) takes a fresh one, exactly one caller winning it. Held
        and beating, it would read as a close under way until this agent's process ends."""
        held, self._held = self._held, None
        if self._beating is not None:
            self._beating.set()
        if held is None:
            return
        set_reason(self.store, held, f"closing failed: {why}")
        finish(self.store, held, TrialState.FAIL)

    def is_closed(self) -> bool:
        return self._epoch_token_in(TrialState.COMPLETE)

    def is_begun(self) -> bool:
        """A closer holds this epoch's token or has closed it: what other agents write about the
        sweep from now on would land after, or among, the closer's last word."""
        return self._epoch_token_in(TrialState.RUNNING, TrialState.COMPLETE)

    def _epoch_token_in(self, *states: TrialState) -> bool:
        """Has the current epoch a token in one of `states`?"""
        study_id = self._study(create=False)
        if study_id is None:
            return False
        return any(t.state in states for t in self._epoch_trials(study_id, self.epoch()))

    def epoch(self) -> int:
        study_id = self._study(create=False)
        if study_id is None:
            return 0
        return int(self.store.get_study_system_attrs(study_id).get(CLOSE_EPOCH, 0))

    def reopen(self) -> int:
        """Open a new close epoch, so the next completion elects a closer again; returns it.

        Two agents re-opening at once may skip an epoch number, which is harmless: only the
        current epoch is ever looked at.
        """
        study_id = self._study(create=True)
        epoch = self.epoch() + 1
        self.store.set_study_system_attr(study_id, CLOSE_EPOCH, epoch)
        return epoch

    @property
    def opened(self) -> bool:
        """Has this agent found or created the close study (so its absence means it was deleted)?"""
        return self._study_id is not None

    def _study(self, create: bool) -> int | None:
        if self._study_id is None:
            self._study_id = (
                ensure_companion(self.store, self.name, self.identity)
                if create
                else find_study(self.store, self.name)
            )
        return self._study_id

    def _epoch_trials(self, study_id: int, epoch: int) -> list[FrozenTrial]:
        return of_epoch(self.store.get_all_trials(study_id, deepcopy=False), epoch)

    def _nominate(self, study_id: int, epoch: int) -> None:
        self.store.create_new_trial(
            study_id, template_trial=trial_template(TrialState.WAITING, {}, {}, {CLOSE_EPOCH: epoch})
        )

    def _hold(self, token_id: int) -> None:
        for key, value in self.heartbeat.owner_attrs().items():
            self.store.set_trial_system_attr(token_id, key, value)
        self._held = token_id
        self._beating = self.heartbeat.keep_alive(token_id)


def of_epoch(trials: list[FrozenTrial], epoch: int) -> list[FrozenTrial]:
    """The close study's trials of `epoch`, lowest number first."""
    return sorted((t for t in trials if t.system_attrs.get(CLOSE_EPOCH) == epoch), key=lambda t: t.number)


def holds_all_below(trials: list[FrozenTrial], number: int) -> bool:
    """Does this read of a study hold every trial numbered below `number`? Numbers are dense, so a
    read lacking none has `number` distinct numbers below it."""
    return len({t.number for t in trials if t.number < number}) == number
