"""How often a point may run: the one rule behind re-queues, stale reclaims and lost re-runs."""

from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import FrozenTrial

from .names import ATTEMPT, FIRST_ATTEMPT


def attempt_of(trial: FrozenTrial) -> int:
    """Which run of its point a trial is: 1 for the first, 2 for the second, ... counting every
    run of the point, also those before it was given a fresh set of attempts."""
    return int(trial.system_attrs.get(ATTEMPT, 1))


def first_attempt_of(trial: FrozenTrial) -> int:
    """The attempt that opened the point's current set of attempts: 1, or the one after those a
    point failed for good had spent, when it was queued again (`fail_fast`, `--retry-failed`)."""
    return int(trial.system_attrs.get(FIRST_ATTEMPT, 1))


@dataclass(frozen=True)
class RetryPolicy:
    """A point runs at most `1 + max_retries` times per set of attempts (a point failed for good
    and queued again gets a fresh set)."""

    max_retries: int

    def may_run(self, attempt: int, first: int = 1) -> bool:
        """May attempt number `attempt` of a point run, its set of attempts opened by `first`?"""
        return attempt - first < 1 + self.max_retries

    def may_retry(self, attempt: int, first: int = 1) -> bool:
        """May a point run again after its attempt number `attempt` failed?"""
        return self.may_run(attempt + 1, first)

    def may_retry_trial(self, trial: FrozenTrial) -> bool:
        """May the point of a failed trial run again?"""
        return self.may_retry(attempt_of(trial), first_attempt_of(trial))
