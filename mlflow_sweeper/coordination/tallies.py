"""What a list of trials says about a sweep: pure functions, no storage access."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..constraints import is_feasible
from .names import AGENT_LOST, INFEASIBLE, NO_RETRY, REASON, RUN_ATTR, SLOT, WARM_ATTR
from .policy import RetryPolicy

INTERRUPTED_PREFIX = "interrupted"  # the reason given to an attempt cancelled by Ctrl-C


@dataclass
class Progress:
    budget: int
    complete: int
    running: int
    waiting: int
    failed_for_good: int
    best: FrozenTrial | None
    pruned: int = 0
    warm_started: int = 0  # earlier results a warm start entered (those holding a point count as done too)
    warm_held: int = 0  # of those, the ones holding a point of the budget

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.complete - self.pruned - self.failed_for_good - self.running)


def latest_per_slot(trials: Iterable[FrozenTrial]) -> dict[int, FrozenTrial]:
    """Each slot's deciding trial: a COMPLETE one if any, else its highest-numbered attempt."""
    latest: dict[int, FrozenTrial] = {}
    for trial in trials:
        slot = trial.system_attrs.get(SLOT)
        if slot is None:
            continue
        prev = latest.get(slot)
        if (
            prev is None
            or prev.state != TrialState.COMPLETE
            and (trial.state == TrialState.COMPLETE or trial.number > prev.number)
        ):
            latest[slot] = trial
    return latest


def unresolved_slots(trials: Iterable[FrozenTrial], policy: RetryPolicy) -> list[FrozenTrial]:
    """Slots with no COMPLETE trial whose last attempt failed and may run again (a lost re-queue),
    unless it was failed on purpose without a retry (infeasible, a missing metric)."""
    return [
        t
        for t in latest_per_slot(trials).values()
        if t.state == TrialState.FAIL and policy.rerun(t) is not None and not t.system_attrs.get(NO_RETRY)
    ]


# A slot with one of these has no failure owed: done (a pruned trial counts as run), or not over.
RESOLVED_OR_ACTIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def failed_for_good(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The last attempt of each slot that never completed and has nothing running or queued."""
    by_slot: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        if SLOT in trial.system_attrs:
            by_slot.setdefault(trial.system_attrs[SLOT], []).append(trial)
    failed = []
    for group in by_slot.values():
        if any(t.state in RESOLVED_OR_ACTIVE for t in group):
            continue
        failed.append(max(group, key=lambda t: t.number))
    return sorted(failed, key=lambda t: t.number)


def needing_attention(failed: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The points failed for good that say something is wrong: not the infeasible ones (out of
    memory, a non-finite objective), which are results of the search."""
    return [t for t in failed if INFEASIBLE not in t.user_attrs]


def infeasible(failed: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The points failed for good that are infeasible: results, never retried."""
    return [t for t in failed if INFEASIBLE in t.user_attrs]


def failed_to_retry(trials: Iterable[FrozenTrial]) -> int:
    """Points whose attempts so far failed (not interrupted) and that will run again: nothing of
    them completed, was pruned or runs, and an attempt is queued or owed (not failed for good)."""
    by_slot: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        if SLOT in trial.system_attrs:
            by_slot.setdefault(trial.system_attrs[SLOT], []).append(trial)
    settled = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    count = 0
    for group in by_slot.values():
        if any(t.state in settled for t in group) or all(t.state == TrialState.FAIL for t in group):
            continue
        if any(failed_by_itself(t) for t in group):
            count += 1
    return count


def interrupted(trial: FrozenTrial) -> bool:
    """An attempt cancelled by Ctrl-C or SIGTERM: FAIL in Optuna, but nothing failed."""
    return str(trial.user_attrs.get(REASON, "")).startswith(INTERRUPTED_PREFIX)


def failed_by_itself(trial: FrozenTrial) -> bool:
    """A FAIL trial that says something about its point or project: not cancelled (Ctrl-C), and
    not ended because its agent was lost (a preempted machine)."""
    return (
        trial.state == TrialState.FAIL and not interrupted(trial) and not trial.system_attrs.get(AGENT_LOST)
    )


def own_run_id(trial: FrozenTrial) -> str | None:
    """The run of a trial this sweep ran: None for an earlier result a warm start brought in (its
    run belongs to another sweep) or a trial without a run."""
    return None if WARM_ATTR in trial.user_attrs else trial.user_attrs.get(RUN_ATTR)


def attempted(trial: FrozenTrial) -> bool:
    """A trial this sweep started for a point: not a queued re-run, not an earlier result
    holding one, and not a point given back before its run existed (its agent stopping)."""
    if trial.state == TrialState.WAITING or SLOT not in trial.system_attrs or WARM_ATTR in trial.user_attrs:
        return False
    return not (interrupted(trial) and RUN_ATTR not in trial.user_attrs)


def state_counts(trials: Iterable[FrozenTrial]) -> dict[TrialState, int]:
    counts = {state: 0 for state in TrialState}
    for trial in trials:
        counts[trial.state] += 1
    return counts


def may_be_best(trial: FrozenTrial) -> bool:
    """Can this trial be the best of a single-objective sweep? COMPLETE, with a value, feasible."""
    return trial.state == TrialState.COMPLETE and trial.value is not None and is_feasible(trial)


def _sign(direction: StudyDirection) -> float:
    """What a value is multiplied by so that lower is better."""
    return -1.0 if direction == StudyDirection.MAXIMIZE else 1.0


def best(trials: Iterable[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The feasible COMPLETE trial with the best value (the lowest number among equals); None if none."""
    done = [t for t in trials if may_be_best(t)]
    if not done:
        return None
    sign = _sign(direction)
    return min(done, key=lambda t: (sign * t.value, t.number))


def ends_its_point(trial: FrozenTrial, last_failures: set[int]) -> bool:
    """Did this attempt settle its point? Completed (an earlier result holding a grid point too)
    or pruned; or failed, as the last attempt of a point failed for good (`last_failures`). An
    attempt cancelled by Ctrl-C or by its agent's loss settles nothing: its point runs again on
    resume (`status` counts it as failed until then)."""
    if SLOT not in trial.system_attrs:
        return False  # an earlier result that holds no point of the budget
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.number in last_failures and failed_by_itself(trial)


def best_so_far_step(trials: Iterable[FrozenTrial], number: int, direction: StudyDirection) -> int | None:
    """The step at which trial `number` became the best so far: how many of the sweep's points
    had ended when it did, in the order they ended (`ends_its_point`), or None when one that
    ended before it was as good.

    Every agent derives its points of the parent's best-so-far curve from the storage this way,
    so the points agree with each other whichever agent writes first: the curve never steps back.
    """
    trials = list(trials)
    last_failures = {t.number for t in failed_for_good(trials)}
    ended = sorted(
        (t for t in trials if t.state.is_finished() and t.datetime_complete is not None),
        key=lambda t: (t.datetime_complete, t.number),
    )
    sign = _sign(direction)
    earlier: float | None = None
    step = 0
    for trial in ended:
        step += ends_its_point(trial, last_failures)
        candidate = may_be_best(trial)
        if trial.number == number:
            if not candidate or (earlier is not None and sign * trial.value >= earlier):
                return None
            return step
        if candidate:
            value = sign * trial.value
            earlier = value if earlier is None else min(earlier, value)
    return None


def _minimized(trials: Iterable[FrozenTrial], directions: list[StudyDirection]) -> list[tuple]:
    """(trial, values turned so that lower is better) for every COMPLETE trial with all values."""
    signs = [_sign(d) for d in directions]
    return [
        (t, [s * v for s, v in zip(signs, t.values, strict=True)])
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and len(t.values) == len(signs)
        and is_feasible(t)
    ]


def _dominates(a: list[float], b: list[float]) -> bool:
    """At least as good in every objective and better in one (lower is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(trials: Iterable[FrozenTrial], directions: list[StudyDirection]) -> list[FrozenTrial]:
    """The COMPLETE trials no other COMPLETE trial dominates, in trial order. Equal values do
    not dominate each other: both stay."""
    done = _minimized(trials, directions)
    front = [t for t, mine in done if not any(_dominates(other, mine) for _, other in done)]
    return sorted(front, key=lambda t: t.number)


def front_change(
    trials: Iterable[FrozenTrial], number: int, directions: list[StudyDirection]
) -> tuple[bool, list[FrozenTrial]]:
    """What one newly COMPLETE trial (number `number`, among `trials`) changes on the Pareto front: whether
    it is on it, and the trials it pushed off (on the front without it, dominated by it).

    O(n x pushed) rather than recomputing the front, so an agent can keep the front's tags
    right after each trial; the close recomputes the whole front anyway."""
    done = _minimized(trials, directions)
    mine = next((values for t, values in done if t.number == number), None)
    if mine is None:
        return False, []
    others = [(t, values) for t, values in done if t.number != number]
    if any(_dominates(values, mine) for _, values in others):
        return False, []
    beaten = [(t, values) for t, values in others if _dominates(mine, values)]
    pushed = [t for t, values in beaten if not any(_dominates(o, values) for u, o in others if u is not t)]
    return True, sorted(pushed, key=lambda t: t.number)


def in_budget(trial: FrozenTrial, budget: int) -> bool:
    """Not an earlier result entered by warm start, unless it holds a point of the budget."""
    return WARM_ATTR not in trial.user_attrs or trial.system_attrs.get(SLOT, budget) < budget


def progress(trials: list[FrozenTrial], budget: int, best_trial: FrozenTrial | None) -> Progress:
    counts = state_counts(t for t in trials if in_budget(t, budget))
    return Progress(
        budget=budget,
        complete=counts[TrialState.COMPLETE],
        running=counts[TrialState.RUNNING],
        waiting=counts[TrialState.WAITING],
        failed_for_good=len(failed_for_good(trials)),
        best=best_trial,
        pruned=counts[TrialState.PRUNED],
        warm_started=warm_started(trials),
        warm_held=warm_held(trials, budget),
    )


def warm_started(trials: Iterable[FrozenTrial]) -> int:
    """The earlier results a warm start entered."""
    return sum(WARM_ATTR in t.user_attrs for t in trials)


def warm_held(trials: Iterable[FrozenTrial], budget: int) -> int:
    """The earlier results holding a point of the budget (a grid's): done, never run."""
    return sum(WARM_ATTR in t.user_attrs and in_budget(t, budget) for t in trials)


def warm_budget_words(held: int) -> str:
    """What earlier results do to the budget: none of it is theirs, but a point they hold is done."""
    if not held:
        return "they use none of the budget"
    return (
        f"{held} of them hold points of the budget, done without running them; "
        "max_trials counts new trials only"
    )
