"""`fail_fast`: a sweep whose first trials all fail stops starting trials, instead of running
every point 1 + max_retries times before the user learns that nothing works.

A pure function of the trial list, so it counts across agents: the first `limit` trials of the
sweep (started ones, by trial number; every attempt counts, trials interrupted by Ctrl-C or whose
agent was lost do not) have all ended FAIL, and no trial has completed yet. The sweep stays
resumable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from .creation import TrialFactory
from .names import FAIL_FAST_FIRED, REASON, WARM_ATTR
from .store import RetryingStorage
from .tallies import attempted, failed_by_itself


def _counts(trial: FrozenTrial) -> bool:
    """A started trial of a point, not cancelled by Ctrl-C nor ended by the loss of its agent
    (neither says anything about the project)."""
    return attempted(trial) and (trial.state != TrialState.FAIL or failed_by_itself(trial))


def fail_fast_reason(trials: Iterable[FrozenTrial], limit: int) -> str | None:
    """Why the sweep must stop starting trials, or None: the first `limit` started trials (by
    number) have all ended FAIL, and no trial has completed. A first trial still running decides
    nothing yet."""
    first = _first_all_failed(trials, limit)
    if first is None:
        return None
    return (
        f"{_all_failed(limit)}: {_reasons(first)} (fail_fast); "
        f"fix the cause and run again to resume, or set fail_fast: 0. {NOTHING_LEARNED_NOTE}"
    )


def _reasons(first: list[FrozenTrial]) -> str:
    """Why they failed: the one reason they share, or each with the trials it ended."""
    by_reason: dict[str, list[int]] = {}
    for trial in first:
        by_reason.setdefault(str(trial.user_attrs.get(REASON, "failed")), []).append(trial.number)
    if len(by_reason) == 1:
        return next(iter(by_reason))
    return "; ".join(
        f"trial{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}: {reason}"
        for reason, numbers in by_reason.items()
    )


FAIL_FAST_STOP = "fail_fast"  # `status`'s `stopped`: the rest is still owed, the sweep resumes once fixed


def fail_fast_stop(trials: Iterable[FrozenTrial], limit: int) -> str | None:
    """The short form of `fail_fast_reason` that `status` shows, or None when it has not fired."""
    return None if _first_all_failed(trials, limit) is None else f"{_all_failed(limit)} (fail_fast)"


def _all_failed(limit: int) -> str:
    return "the first trial failed" if limit == 1 else f"the first {limit} trials all failed"


def _first_all_failed(trials: Iterable[FrozenTrial], limit: int) -> list[FrozenTrial] | None:
    """The first `limit` started trials when they all failed and none has completed; else None."""
    if limit <= 0:
        return None
    trials = list(trials)
    if any(_completed(t) for t in trials):
        return None
    first = sorted((t for t in trials if _counts(t)), key=lambda t: t.number)[:limit]
    if len(first) < limit or any(t.state != TrialState.FAIL for t in first):
        return None
    return first


NOTHING_LEARNED_NOTE = (
    "No trial has completed, so the config's parameters and objective may still change: the sweep "
    "then starts over"
)
LEARNED_SINCE_NOTE = (
    "A trial still running then has completed since, so the config's parameters and objective can "
    "no longer change (a new sweep_name with warm_start keeps what it learned)"
)


def as_it_stands(reason: str, trials: Iterable[FrozenTrial]) -> str:
    """A fail_fast reason as it stands when the agent leaves: a trial running when it fired may
    have completed since, and then the sweep can no longer start over under a changed config."""
    if NOTHING_LEARNED_NOTE not in reason or not any(_completed(t) for t in trials):
        return reason
    return reason.replace(NOTHING_LEARNED_NOTE, LEARNED_SINCE_NOTE)


def _completed(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE and WARM_ATTR not in trial.user_attrs


class FailFastMark:
    """The study's record that `fail_fast` fired, so that every agent stops starting trials, not
    only the one whose failure fired it (the others would start new ones until a failure of their
    own made them look). Written by the agent that fired it; read by the others before each claim
    while they have seen no trial complete (one read of the study's attributes).

    A mark found when the sweep is opened is a past run's: the user resumes, having fixed the
    cause. Only a mark made since then stops this agent; each mark is told apart by its token."""

    def __init__(self, store: RetryingStorage, factory: TrialFactory, limit: int):
        self.store, self.factory, self.limit = store, factory, limit
        self._found: Any = None

    def _read(self) -> Any:
        return self.store.get_study_system_attrs(self.factory.study_id).get(FAIL_FAST_FIRED)

    def remember_found(self) -> None:
        """The mark as the sweep is opened: not this run's."""
        if self.limit > 0:
            self._found = self._read()

    def fired(self) -> str | None:
        """Why another agent stopped the sweep since it was opened, or None."""
        if self.limit <= 0:
            return None
        mark = self._read()
        if not isinstance(mark, list) or len(mark) != 2 or mark == self._found:
            return None
        return str(mark[0])

    def note(self, why: str) -> None:
        mark = [why, uuid.uuid4().hex]
        self.store.set_study_system_attr(self.factory.study_id, FAIL_FAST_FIRED, mark)
        self._found = mark  # this agent's own: it knows
