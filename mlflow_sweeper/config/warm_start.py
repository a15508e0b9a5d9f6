"""`warm_start:` as written in a config: where earlier results come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigProblem
from .shown import shown


@dataclass(frozen=True)
class SweepSource:
    """Another sweep in the same storages, `experiment/sweep_name`."""

    sweep: str

    @property
    def label(self) -> str:
        return f"sweep:{self.sweep}"

    def describe(self, real: bool = False) -> dict[str, str]:
        return {"sweep": self.sweep}


@dataclass(frozen=True)
class RunsSource:
    """MLflow runs matching a filter string, in `experiment` (default: the sweep's own). `shown`:
    the source as the sweep shows and records it (a value from `${VAR}` as `***`), when it differs:
    the real one only searches."""

    runs: str
    experiment: str | None = None
    shown: RunsSource | None = None

    @property
    def label(self) -> str:
        seen = self.shown or self
        where = f"{seen.experiment}:" if seen.experiment else ""
        return f"runs:{where}{seen.runs}"

    def describe(self, real: bool = False) -> dict[str, str]:
        """The source as recorded (shown; `real`: as it searches, which earlier versions recorded)."""
        seen = self if real or self.shown is None else self.shown
        return {"runs": seen.runs, **({"experiment": seen.experiment} if seen.experiment else {})}


WarmSource = SweepSource | RunsSource


def parse_warm_start(value: Any, key: str = "warm_start") -> tuple[WarmSource, ...]:
    """A list of `{sweep: "exp/name"}` or `{runs: "<filter>", experiment: "<name>"}`; one source
    may be written alone, without the list."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ConfigProblem(key, 'expected a list of {sweep: "exp/name"} or {runs: "<filter string>"}')
    sources: list[WarmSource] = []
    for i, item in enumerate(value):
        at = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ConfigProblem(
                at, f'expected {{sweep: "exp/name"}} or {{runs: "<filter>"}}, got {shown(item)}'
            )
        unknown = sorted(set(map(str, item)) - {"sweep", "runs", "experiment"})
        if unknown:
            raise ConfigProblem(f"{at}.{unknown[0]}", "unknown key; allowed: sweep, runs, experiment")
        if ("sweep" in item) == ("runs" in item):
            raise ConfigProblem(at, "give exactly one of 'sweep' or 'runs'")
        if "sweep" in item:
            if "experiment" in item:
                raise ConfigProblem(f"{at}.experiment", "only with 'runs' (a sweep names its experiment)")
            sweep = item["sweep"]
            if not isinstance(sweep, str) or "/" not in sweep.strip("/"):
                raise ConfigProblem(f"{at}.sweep", f'expected "experiment/sweep_name", got {shown(sweep)}')
            sources.append(SweepSource(sweep))
            continue
        runs, experiment = item["runs"], item.get("experiment")
        if not isinstance(runs, str):
            raise ConfigProblem(f"{at}.runs", f"expected an MLflow filter string, got {shown(runs)}")
        if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
            raise ConfigProblem(f"{at}.experiment", f"expected an experiment name, got {shown(experiment)}")
        sources.append(RunsSource(runs, experiment))
    return tuple(sources)


def with_shown(sources: tuple[WarmSource, ...], shown: tuple[WarmSource, ...]) -> tuple[WarmSource, ...]:
    """The sources, each runs filter knowing how it shows (parsed from the shown config, in order)."""
    paired = []
    for real, seen in zip(sources, shown, strict=False):
        if isinstance(real, RunsSource) and isinstance(seen, RunsSource) and seen != real:
            real = RunsSource(real.runs, real.experiment, seen)
        paired.append(real)
    return tuple(paired)
