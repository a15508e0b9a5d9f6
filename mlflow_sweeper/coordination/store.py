"""One retrying wrapper around an Optuna storage, and the atomic steps the protocol is built on.

Every storage call of the protocol may meet a busy SQLite file or a restarting server, so each
goes through `storages.retry`; the wrapper does that once instead of at every call site.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.trial import FrozenTrial, TrialState

from .. import compat
from ..secrets import redact
from ..storages import retry
from ..storages.retry import OUTAGE_ATTEMPTS
from .names import FINGERPRINT_ATTR, INFEASIBLE, REASON

log = logging.getLogger(__name__)


class RetryingStorage:
    """An Optuna storage whose every method call is retried on transient errors.

    `raw` is the storage itself, for what needs the real object (`optuna.load_study`, the
    private fast paths in `compat`).
    """

    def __init__(self, raw: Any, attempts: int = OUTAGE_ATTEMPTS):
        self.raw = raw
        self.attempts = attempts
        self._journal = isinstance(raw, JournalStorage)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.raw, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return retry(lambda: method(*args, **kwargs), name, attempts=self.attempts)
            except Exception:
                if self._journal:
                    replay_leftovers(self.raw)
                raise

        return call

    def with_attempts(self, attempts: int) -> RetryingStorage:
        """The same storage, giving up sooner (for calls that are repeated anyway, like beats)."""
        return RetryingStorage(self.raw, attempts)

    def create_trial_numbered(self, study_id: int, template: Any = None) -> tuple[int, int]:
        """A new trial's id and number, in one round trip where the storage allows."""
        return retry(
            lambda: compat.create_trial_numbered(self.raw, study_id, template),
            "create_trial_numbered",
            attempts=self.attempts,
        )


def replay_leftovers(journal: JournalStorage, most: int = 64) -> None:
    """After a failed call, apply what the journal's log still holds unread, in this thread.

    Optuna's journal storage appends a write to its log and then replays the log; replaying
    raises the error of a write from this thread (its worker id is the thread's id) and stops
    there. A call that failed between its append and the end of that replay (a retried write
    appended twice, an append that raised after writing) leaves writes of its own unread, and the
    next call made from a thread with the same id, possibly another thread reusing it, would
    raise their error as its own. Replaying them now, their errors belonging to the call that
    failed, leaves nothing of that call for a later one.
    """
    for _ in range(most):
        try:
            journal.get_all_studies()  # replays the log to its end
            return
        except (UpdateFinishedTrialError, KeyError, DuplicatedStudyError, ValueError):
            continue  # one more of the failed call's writes applied; on to the rest
        except Exception as exc:  # noqa: BLE001 - the log unreadable now: the next call replays it
            log.debug("could not replay the journal after a failed call: %s", exc)
            return


def ensure_study(store: RetryingStorage, name: str, direction=optuna.study.StudyDirection.MINIMIZE) -> int:
    """The id of study `name`, created if missing; safe when many agents create it at once."""
    try:
        return store.create_new_study([direction], name)
    except DuplicatedStudyError:
        return store.get_study_id_from_name(name)


def find_study(store: RetryingStorage, name: str) -> int | None:
    try:
        return store.get_study_id_from_name(name)
    except KeyError:
        return None


def take(store: RetryingStorage, trial_id: int) -> bool:
    """Optuna's atomic WAITING -> RUNNING; False when another agent took it first."""
    try:
        return bool(store.set_trial_state_values(trial_id, TrialState.RUNNING))
    except UpdateFinishedTrialError:
        return False
    except Exception as exc:  # noqa: BLE001 - a lost race on SQLite surfaces as an error
        log.debug("lost the race for trial %s: %s", trial_id, exc)
        return False


# Optuna's own tools (`get_all_study_summaries`, `best_trial`, optuna-dashboard) read a value
# from every COMPLETE trial: one with nothing to score (a sweep without `spec`, a close token)
# is stored with this value, which the sweep itself never reads as a result.
NO_VALUE = 0.0


def stored_values(state: TrialState, values: list | None) -> list | None:
    """What a trial ending in `state` is stored with: a COMPLETE one always has a value."""
    return [NO_VALUE] if state == TrialState.COMPLETE and values is None else values


def scores_trials(store: Any, study_id: int) -> bool:
    """Was the sweep stored with an objective (`spec`)? Read from the study, not from a config,
    which may have been edited since (`status` and `report` read it as it is now)."""
    stored = store.get_study_system_attrs(study_id).get(FINGERPRINT_ATTR)
    if stored is None:  # being created this moment: it has no completed trial yet
        return True
    fingerprint = json.loads(stored)
    return bool(fingerprint.get("metric") or fingerprint.get("metrics"))


def read_trials(store: Any, study_id: int, scored: bool | None = None) -> list[FrozenTrial]:
    """A sweep's trials as the sweep reads them: without an objective, with no values (not the
    stored NO_VALUE). `scored`: `scores_trials`, when the caller knows it already."""
    trials = store.get_all_trials(study_id, deepcopy=False)
    if scored if scored is not None else scores_trials(store, study_id):
        return trials
    read = []
    for trial in trials:
        if trial.values is not None:
            trial = copy.copy(trial)  # the storage may hand out the trials it caches
            trial.values = None
        read.append(trial)
    return read


def finish(store: RetryingStorage, trial_id: int, state: TrialState, values: list | None = None) -> bool:
    """End a trial unless it has ended already (atomic: of two agents ending it, one wins)."""
    try:
        store.set_trial_state_values(trial_id, state, stored_values(state, values))
    except UpdateFinishedTrialError:
        return False
    return True


def set_reason(store: RetryingStorage, trial_id: int, reason: str) -> None:
    """Why a trial failed, for the summary and `status` (ignored once the trial has ended)."""
    with contextlib.suppress(UpdateFinishedTrialError):
        store.set_trial_user_attr(trial_id, REASON, redact(reason)[:2000])


def mark_infeasible(store: RetryingStorage, trial_id: int, reason: str) -> None:
    """Before a trial is failed: its point cannot run (a result, not a failure), and why."""
    store.set_trial_user_attr(trial_id, INFEASIBLE, redact(reason))


def trial_template(state: TrialState, params: dict, distributions: dict, system_attrs: dict) -> FrozenTrial:
    """A trial to create: its state, parameters and system attributes; the storage numbers it."""
    return FrozenTrial(
        number=-1,
        state=state,
        value=None,
        datetime_start=dt.datetime.now() if state == TrialState.RUNNING else None,
        datetime_complete=None,
        params=params,
        distributions=distributions,
        user_attrs={},
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=-1,
    )
