"""What a sweep optimizes, as the report needs it: one name and one direction per objective."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SweepConfig


@dataclass(frozen=True)
class Objectives:
    names: tuple[str, ...]  # empty: the sweep has no `spec`, trials have no value
    directions: tuple[str, ...]  # "minimize" or "maximize", one per name

    @property
    def multi(self) -> bool:
        return len(self.names) > 1

    @property
    def optimized(self) -> bool:
        return bool(self.names)


def objectives_of(config: SweepConfig) -> Objectives:
    """Read the objectives from the config: `spec.metrics` (several) or `spec.metric` (one).

    Looks at the parsed objective first and falls back to the raw `spec` mapping, so the
    report reads every form of `spec` the config accepts.
    """
    metrics = getattr(config.objective, "metrics", None)
    if not metrics:
        spec = (config.raw or {}).get("spec") or {}
        metrics = spec.get("metrics") if isinstance(spec, dict) else None
    if metrics and len(metrics) > 1:
        names, directions = [], []
        for item in metrics:
            name, direction = _name_and_direction(item)
            names.append(name)
            directions.append(direction)
        return Objectives(tuple(names), tuple(directions))
    if metrics:
        name, direction = _name_and_direction(metrics[0])
        return Objectives((name,), (direction,))
    metric = config.objective.metric
    if metric is None:
        return Objectives((), ())
    return Objectives((metric,), (config.objective.direction,))


def _name_and_direction(item) -> tuple[str, str]:
    if isinstance(item, dict):
        return str(item.get("name") or item.get("metric")), str(item.get("direction", "minimize"))
    if isinstance(item, (tuple, list)):
        return str(item[0]), str(item[1])
    name = getattr(item, "name", None) or getattr(item, "metric", None)
    return str(name), str(getattr(item, "direction", "minimize"))
