"""`spec.target`: once a feasible value reaches it, the study records it and no agent claims again."""

from __future__ import annotations

from optuna.trial import TrialState

from ..config.objective import Objective
from ..constraints import is_feasible, satisfied
from .creation import TrialFactory
from .names import TARGET_REACHED
from .store import RetryingStorage


class TargetMark:
    """The study's record that `spec.target` was reached: read while it has not been (one read of
    the study's attributes per call, only for a sweep with a target), remembered once seen.

    The mark was made under the target of its time: a config that raised the target since (a
    sweep resumed to go further) is checked against the trials once per mark, and the sweep goes
    on while no feasible result reaches the new one."""

    def __init__(self, store: RetryingStorage, objective: Objective, factory: TrialFactory):
        self.store = store
        self.objective = objective
        self.factory = factory  # holds the study's id once it is attached
        self._seen = False
        self._checked: object = None  # the mark last checked against this config's target

    def reached(self) -> bool:
        if self._seen or self.objective.target is None:
            return self._seen
        marked = self.store.get_study_system_attrs(self.factory.study_id).get(TARGET_REACHED)
        if marked is not None and marked != self._checked:
            self._checked = marked
            self._seen = self._holds()
        return self._seen

    def _holds(self) -> bool:
        """Does a feasible completed result reach this config's target?"""
        trials = self.store.get_all_trials(
            self.factory.study_id, deepcopy=False, states=(TrialState.COMPLETE,)
        )
        return any(
            t.values is not None
            and len(t.values) == 1
            and is_feasible(t)
            and self.objective.reached(t.values[0])
            for t in trials
        )

    def note(
        self, number: int, value: float | list[float] | None, constraints: dict[str, float] | None
    ) -> None:
        """A feasible single value reaching the target is recorded in the study (as trial `number`)."""
        one_value = not isinstance(value, list | tuple)
        if satisfied(constraints or {}) and one_value and self.objective.reached(value):
            self.store.set_study_system_attr(self.factory.study_id, TARGET_REACHED, number)
            self._seen = True
