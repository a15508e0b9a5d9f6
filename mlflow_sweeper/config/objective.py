"""What a sweep optimizes: the one model of the objective that every part reads (the config's
checks, the study's directions, the close, the report)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from optuna.study import StudyDirection

_STUDY_DIRECTIONS = {"minimize": StudyDirection.MINIMIZE, "maximize": StudyDirection.MAXIMIZE}


@dataclass(frozen=True)
class Metric:
    """One objective of several: a metric the trials log and its direction."""

    name: str
    direction: str = "minimize"


@dataclass(frozen=True)
class Objective:
    """What a trial's value is. One objective: `metric` and `direction` (and maybe `target`).
    Several: `metrics`, with `metric` None so that nothing looks for a single best trial."""

    direction: str = "minimize"
    metric: str | None = None
    metrics: tuple[Metric, ...] = ()
    target: float | None = None

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    @property
    def names(self) -> tuple[str, ...]:
        """The metrics a trial's values are read from, in order; empty without `spec`."""
        if self.metrics:
            return tuple(m.name for m in self.metrics)
        return () if self.metric is None else (self.metric,)

    @property
    def optimized(self) -> bool:
        """Do trials have a value? (False without `spec`.)"""
        return bool(self.names)

    @property
    def directions(self) -> tuple[str, ...]:
        """One direction per objective, "minimize" or "maximize" ("minimize" without `spec`)."""
        if self.metrics:
            return tuple(m.direction for m in self.metrics)
        return (self.direction,)

    @property
    def study_directions(self) -> list[StudyDirection]:
        """`directions` as Optuna's study takes them."""
        return [_STUDY_DIRECTIONS[direction] for direction in self.directions]

    def with_directions(self, directions: list[str] | tuple[str, ...]) -> Objective:
        """The same metrics with other directions (a stored study's), when there are as many."""
        if len(directions) != len(self.names):
            return self
        if self.metrics:
            metrics = tuple(Metric(m.name, d) for m, d in zip(self.metrics, directions, strict=True))
            return replace(self, direction=directions[0], metrics=metrics)
        return replace(self, direction=directions[0])

    def reached(self, value: float | None) -> bool:
        """Does a completed trial's value reach `target` (>= maximizing, <= minimizing)?"""
        if self.target is None or value is None:
            return False
        return value >= self.target if self.direction == "maximize" else value <= self.target
