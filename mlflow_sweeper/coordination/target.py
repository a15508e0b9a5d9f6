"""`spec.target`: once a feasible value reaches it, the study records it and no agent claims again."""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState

from ..config.objective import Objective
from ..constraints import is_feasible, satisfied
from .creation import TrialFactory
from .names import TARGET_REACHED
from .store import RetryingStorage

STOPPED_BY_TARGET = "target"  # the parent's `sweeper.stopped` tag, and `status`'s `stopped`
REACHED_WORDS = "a trial reached the target"  # why the sweep stopped, as status and the description say


def target_mark(number: int, value: float) -> list:
    """What the study's TARGET_REACHED attr holds: the trial that reached the target, and its
    value, so that an agent whose config raised the target since can tell at once."""
    return [number, float(value)]


def marked_value(mark: Any) -> float | None:
    """The value a mark holds; None for a mark of an older version of the sweeper (a number)."""
    return float(mark[1]) if isinstance(mark, list) and len(mark) == 2 else None


class TargetMark:
    """The study's record that `spec.target` was reached: read while it has not been (one read of
    the study's attributes per call, only for a sweep with a target), remembered once seen.

    A mark was made under the target of its time. A config that raised the target since (a sweep
    resumed to go further) reads the marked value against its own target: the sweep goes on while
    no feasible result reaches the new one. A trial reaching it is marked before it is COMPLETE
    (so no agent claims again), with its value, so no agent reads the mark before its trial."""

    def __init__(self, store: RetryingStorage, objective: Objective, factory: TrialFactory):
        self.store = store
        self.objective = objective
        self.factory = factory  # holds the study's id once it is attached
        self._seen = False
        self._checked: Any = None  # a mark found short of this config's target

    def reached(self) -> bool:
        if self._seen or self.objective.target is None:
            return self._seen
        mark = self.store.get_study_system_attrs(self.factory.study_id).get(TARGET_REACHED)
        if mark is None or mark == self._checked:
            return False
        value = marked_value(mark)
        self._seen = value is None or self.objective.reached(value) or self._reached_before()
        if not self._seen:
            self._checked = mark
        return self._seen

    def _reached_before(self) -> bool:
        """Did a result that completed before the target was raised reach it? (The mark holds the
        last one that reached the old target, not the best.)"""
        complete = (TrialState.COMPLETE,)
        trials = self.store.get_all_trials(self.factory.study_id, deepcopy=False, states=complete)
        return any(
            is_feasible(t) and self.objective.reached(t.values[0])
            for t in trials
            if t.values is not None and len(t.values) == 1
        )

    def note(
        self, number: int, value: float | list[float] | None, constraints: dict[str, float] | None
    ) -> None:
        """A feasible single value reaching the target is recorded in the study (as trial `number`)."""
        one_value = not isinstance(value, list | tuple)
        if satisfied(constraints or {}) and one_value and self.objective.reached(value):
            self.store.set_study_system_attr(
                self.factory.study_id, TARGET_REACHED, target_mark(number, value)
            )
            self._seen = True
