"""How often a point may run: the one rule behind re-queues, stale reclaims and lost re-runs."""

from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import FrozenTrial

from .names import AGENT_LOST, ATTEMPT, FIRST_ATTEMPT, LOST, QUIT

# A point whose agent was lost (a preempted or killed machine) runs again as the same attempt this
# many times: the loss is no failure of the trial. Past it, a loss counts as a failed attempt, so a
# trial that takes its agent down with it does not run forever.
LOST_RERUNS = 3


def attempt_of(trial: FrozenTrial) -> int:
    """Which run of its point a trial is: 1 for the first, 2 for the second, ... counting every
    run of the point, also those before it was given a fresh set of attempts."""
    return int(trial.system_attrs.get(ATTEMPT, 1))


def lost_count(trial: FrozenTrial) -> int:
    """How many times the point's agent was lost before or while this trial ran."""
    return int(trial.system_attrs.get(LOST, 0))


def loss_spends_an_attempt(trial: FrozenTrial) -> bool:
    """Would losing this trial's agent count as a failed attempt: its point has had its
    `LOST_RERUNS` re-runs as the same attempt (one its agent quit at once never spends one)?"""
    return not trial.system_attrs.get(QUIT) and lost_count(trial) + 1 > LOST_RERUNS


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

    def rerun(self, trial: FrozenTrial, agent_lost: bool | None = None) -> Rerun | None:
        """How the point of a trial ended FAIL runs again, or None when it may not: the same
        attempt when nothing of it failed (its agent quit at once, or was lost, within
        `LOST_RERUNS`), else the next attempt while attempts are left. `agent_lost`: whether its
        agent was lost (None: as the trial records)."""
        losses = lost_count(trial)
        if trial.system_attrs.get(QUIT):
            return Rerun(again=True, losses=losses)
        agent_lost = bool(trial.system_attrs.get(AGENT_LOST)) if agent_lost is None else agent_lost
        if agent_lost:
            losses += 1
            if not loss_spends_an_attempt(trial):
                return Rerun(again=True, losses=losses)
        return Rerun(losses=losses) if self.may_retry_trial(trial) else None


@dataclass(frozen=True)
class Rerun:
    """How a point runs again: `again`, as the same attempt (else the next one); `losses`, the
    times its agent was lost so far, carried by the re-run."""

    again: bool = False
    losses: int = 0
