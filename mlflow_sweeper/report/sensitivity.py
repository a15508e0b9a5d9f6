"""One-at-a-time sensitivity, read back from the trials: for each parameter, the objective at
each of its values while every other parameter sits at the base point."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState


@dataclass(frozen=True)
class ParameterEffect:
    name: str
    points: tuple[tuple[object, float], ...]  # (value of the parameter, objective), base included

    @property
    def spread(self) -> float:
        values = [objective for _, objective in self.points]
        return max(values) - min(values) if values else 0.0


def _key(value: object) -> str:
    return repr(value)


def base_point(trials: list[FrozenTrial]) -> dict[str, object]:
    """Each parameter's most frequent value: in a one-at-a-time sweep, its base value."""
    counts: dict[str, Counter] = {}
    samples: dict[tuple[str, str], object] = {}
    for trial in trials:
        for name, value in trial.params.items():
            counts.setdefault(name, Counter())[_key(value)] += 1
            samples[(name, _key(value))] = value
    return {name: samples[(name, counter.most_common(1)[0][0])] for name, counter in counts.items()}


def parameter_effects(trials: list[FrozenTrial]) -> list[ParameterEffect]:
    """Effects of the completed single-objective trials, largest spread first."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    base = base_point(done)
    effects = []
    for name in base:
        points = []
        for trial in done:
            others_at_base = all(
                _key(trial.params.get(other)) == _key(value) for other, value in base.items() if other != name
            )
            if others_at_base and name in trial.params:
                points.append((trial.params[name], float(trial.value)))
        effects.append(ParameterEffect(name, tuple(sorted(points, key=lambda p: _sort_key(p[0])))))
    return sorted(effects, key=lambda effect: -effect.spread)


def _sort_key(value: object) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))
