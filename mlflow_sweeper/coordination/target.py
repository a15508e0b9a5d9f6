"""`spec.target`: once a feasible value reaches it, the study records it and no agent claims again."""

from __future__ import annotations

from ..config.objective import Objective
from ..constraints import satisfied
from .creation import TrialFactory
from .names import TARGET_REACHED
from .store import RetryingStorage


class TargetMark:
    """The study's record that `spec.target` was reached: read while it has not been (one read of
    the study's attributes per call, only for a sweep with a target), remembered once seen."""

    def __init__(self, store: RetryingStorage, objective: Objective, factory: TrialFactory):
        self.store = store
        self.objective = objective
        self.factory = factory  # holds the study's id once it is attached
        self._seen = False

    def reached(self) -> bool:
        if self._seen or self.objective.target is None:
            return self._seen
        self._seen = TARGET_REACHED in self.store.get_study_system_attrs(self.factory.study_id)
        return self._seen

    def note(
        self, number: int, value: float | list[float] | None, constraints: dict[str, float] | None
    ) -> None:
        """A feasible single value reaching the target is recorded in the study (as trial `number`)."""
        one_value = not isinstance(value, list | tuple)
        if satisfied(constraints or {}) and one_value and self.objective.reached(value):
            self.store.set_study_system_attr(self.factory.study_id, TARGET_REACHED, number)
            self._seen = True
