"""A loaded sweep config: what every other part of the sweeper reads."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pruning import EarlyStopping
from ..search.space import SearchSpace
from ..secrets import MASK, redact
from .folders import LOGS, sweep_folder
from .objective import Objective
from .schema import DEFAULTS


def _default(name: str) -> Any:
    value = DEFAULTS[name]
    if isinstance(value, dict | list):
        return field(default_factory=lambda: copy.deepcopy(value))
    return value


@dataclass(frozen=True)
class SweepConfig:
    path: Path
    experiment: str
    sweep_name: str
    space: SearchSpace
    algorithm: str
    max_trials: int | None
    seed: int | None
    optuna_storage: str
    mlflow_storage: str | None
    output_dir: Path
    objective: Objective
    entry_point: str | None = _default("entry_point")
    project: str = _default("project")
    env_manager: str = _default("env_manager")
    backend: str = _default("backend")
    backend_config: dict[str, Any] | str = _default("backend_config")
    command: str | None = _default("command")
    max_retries: int = _default("max_retries")
    stale_after: float = _default("stale_after")
    trial_timeout: float | None = _default("trial_timeout")
    raw: dict[str, Any] = field(default_factory=dict)  # the file's values as shown (`${VAR}` as ***)
    written: dict[str, Any] = field(default_factory=dict)  # the file's values as written (`${VAR}` kept)
    hidden: dict[str, dict[Any, Any]] = field(default_factory=dict)  # per parameter: {shown: real}
    sampler_options: dict[str, Any] = _default("sampler_options")
    arg_style: str = _default("arg_style")
    fail_fast: int = _default("fail_fast")
    base: dict[str, Any] | None = None  # sensitivity: the base point (checked against the space)
    points: int | None = None  # sensitivity: values per range parameter
    early_stopping: EarlyStopping | None = None
    register: Any = None  # `register:`, a config.register.Registration
    warm_start: list = _default("warm_start")  # earlier results, entered once when the study is created
    devices: str | tuple[str, ...] | None = _default("devices")  # "auto" or device ids
    devices_per_trial: int = _default("devices_per_trial")
    device_env: str = _default("device_env")
    infeasible_when: tuple[str, ...] = _default("infeasible_when")

    def revealed(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's parameters as its process gets them: the values the sweep shows as `***`
        (from `${VAR}`) replaced by the real ones. Nothing else ever sees these."""
        if not self.hidden:
            return params
        return {name: self.hidden.get(name, {}).get(value, value) for name, value in params.items()}

    @property
    def shown_command(self) -> str | None:
        """`command` as the sweep shows it: each value from `${VAR}` as `***`, however short."""
        shown = self.raw.get("command")
        return shown if isinstance(shown, str) else self.command

    @property
    def shown_project(self) -> str | None:
        """`project` as the sweep shows it: resolved, unless a part of it came from `${VAR}` (a
        git URL with a token): then as written, that part as `***`."""
        shown = self.raw.get("project")
        return shown if isinstance(shown, str) and MASK in shown else redact(self.project)

    @property
    def identity(self) -> str:
        """The Optuna study name and the `sweeper.sweep` tag."""
        return f"{self.experiment}/{self.sweep_name}"

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def log_dir(self) -> Path:
        """Where this agent keeps the stdout and stderr of the sweep's trials."""
        return sweep_folder(self.output_dir / LOGS, self.identity)

    def fingerprint(self) -> dict[str, Any]:
        """What defines the sweep: a stored sweep whose fingerprint differs is refused.

        `sampler_options`, `metrics`, `base`, `points` and `early_stopping` join only when given,
        so sweeps stored before they existed still match.
        """
        stored = {
            "parameters": self.space.describe(),
            "algorithm": self.algorithm,
            "seed": self.seed,
            "direction": self.objective.direction,
            "metric": self.objective.metric,
        }
        if self.sampler_options:
            stored["sampler_options"] = dict(self.sampler_options)
        if self.objective.multi:
            stored["metrics"] = [[m.name, m.direction] for m in self.objective.metrics]
        if self.objective.constraints:
            stored["constraints"] = [c.text for c in self.objective.constraints]
        if self.base:
            stored["base"] = dict(self.base)
        if self.points is not None:
            stored["points"] = self.points
        if self.early_stopping is not None:
            stored["early_stopping"] = self.early_stopping.describe()
        return stored

    def as_params(self) -> dict[str, str]:
        """The config flattened into MLflow params for the parent run."""
        flat: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
            else:
                flat[prefix] = json.dumps(value) if not isinstance(value, str) else value

        walk("", self.raw)
        return flat
