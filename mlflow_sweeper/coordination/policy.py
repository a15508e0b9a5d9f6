"""How often a point may run: the one rule behind re-queues, stale reclaims and lost re-runs."""

from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import FrozenTrial

from .names import ATTEMPT


def attempt_of(trial: FrozenTrial) -> int:
    """Which run of its point a trial is: 1 for the first, 2 for the first retry, ..."""
    return int(trial.system_attrs.get(ATTEMPT, 1))


@dataclass(frozen=True)
class RetryPolicy:
    """A point runs at most `1 + max_retries` times."""

    max_retries: int

    def may_run(self, attempt: int) -> bool:
        """May attempt number `attempt` of a point run?"""
        return attempt <= 1 + self.max_retries

    def may_retry(self, attempt: int) -> bool:
        """May a point run again after its attempt number `attempt` failed?"""
        return self.may_run(attempt + 1)
