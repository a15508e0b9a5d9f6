"""`fail_fast`: a sweep whose first trials all fail stops starting trials, instead of running
every point 1 + max_retries times before the user learns that nothing works.

A pure function of the trial list, so it counts across agents: the first `limit` trials of the
sweep (started ones, by trial number; every attempt counts, trials interrupted by Ctrl-C or whose
agent was lost do not) have all ended FAIL, and no trial has completed yet. The sweep stays
resumable.
"""

from __future__ import annotations

from collections.abc import Iterable

from optuna.trial import FrozenTrial, TrialState

from .names import REASON, WARM_ATTR
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
    reasons = sorted({str(t.user_attrs.get(REASON, "failed")) for t in first})
    return (
        f"{_all_failed(limit)}: {'; '.join(reasons)} (fail_fast); "
        f"fix the cause and run again to resume, or set fail_fast: 0. {NOTHING_LEARNED_NOTE}"
    )


FAIL_FAST_STOP = "fail_fast"  # `status`'s `stopped`: the rest is still owed, the sweep resumes once fixed


def fail_fast_stop(trials: Iterable[FrozenTrial], limit: int) -> str | None:
    """The short form of `fail_fast_reason` that `status` shows, or None when it has not fired."""
    return None if _first_all_failed(trials, limit) is None else f"{_all_failed(limit)} (fail_fast)"


def _all_failed(limit: int) -> str:
    return f"the first {limit} trial{'' if limit == 1 else 's'} all failed"


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
