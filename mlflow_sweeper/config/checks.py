"""Validators of single config values: each returns the value as loaded or raises ConfigProblem
(the loader names the file)."""

from __future__ import annotations

import json
import os
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigProblem
from ..hints import did_you_mean
from ..search.algorithms import algorithm_class
from ..search.space import SearchSpace, SpaceError
from ..storages import check_mlflow_url, check_optuna_url, resolve
from .objective import Metric, Objective
from .shown import shown
from .warm_start import parse_warm_start


@dataclass(frozen=True)
class Where:
    """The file being loaded: relative paths resolve against its directory."""

    path: Path

    @property
    def base(self) -> Path:
        return self.path.parent


def text(where: Where, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigProblem(key, f"expected a non-empty string, got {shown(value)}")
    return value


def whole(minimum: int):
    def check(where: Where, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigProblem(key, f"expected a whole number, got {shown(value)}")
        if value < minimum:
            raise ConfigProblem(key, f"must be at least {minimum}, got {value}")
        return value

    return check


def seconds(where: Where, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigProblem(key, f"expected a positive number of seconds, got {shown(value)}")
    return float(value)


def one_of(*choices: str):
    def check(where: Where, key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigProblem(key, f"expected one of {', '.join(choices)}, got {shown(value)}")
        return value

    return check


def mapping(where: Where, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigProblem(key, f"expected a mapping of names to values, got {shown(value)}")
    return value


def local_path(where: Where, key: str, value: Any) -> Path:
    return (where.base / text(where, key, value)).resolve()


def is_local_project(project: str) -> bool:
    """A project given as a directory (relative or absolute), not a git or remote URI."""
    return "://" not in project and not project.startswith("git@")


def project_uri(where: Where, key: str, value: Any) -> str:
    """A local project directory becomes absolute; a git or remote URI stays as written."""
    project = text(where, key, value)
    if is_local_project(project):
        project = str((where.base / project).resolve())
    return project


def backend_config(where: Where, key: str, value: Any) -> dict[str, Any] | str:
    """A mapping, or the path of a JSON file (as mlflow.projects.run takes it)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise ConfigProblem(key, "expected a mapping or the path of a JSON file")
    path = str((where.base / value).resolve())
    if not os.path.isfile(path):
        raise ConfigProblem(key, f"no such JSON file: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigProblem(key, f"not a readable JSON file: {exc}") from None
    return path


def storage_url(kind: str):
    """A storage URL that the storage table knows, its file paths resolved (`kind`: optuna, mlflow)."""

    def check(where: Where, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigProblem(key, f"expected a storage URL string, got {shown(value)}")
        problem = check_optuna_url(value) if kind == "optuna" else check_mlflow_url(value)
        if problem:
            raise ConfigProblem(key, problem)
        return resolve(value, where.base)

    return check


# ---- values with rules of their own -------------------------------------------------------------

SWEEP_NAME = re.compile(r"[\w.-]+")  # letters of any script; whole names only (`fullmatch`)
PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-/ ]+")
MAX_PARAMETER_NAME = 250  # MLflow's longest param key: each parameter is logged under its name
SPEC_KEYS = {"direction", "metric", "metrics", "target", "constraints"}
DIRECTIONS = ("minimize", "maximize")


def sweep_name(where: Where, key: str, value: Any) -> str:
    """Letters of any script, composed (NFC: an `é` typed as e + accent is the same sweep)."""
    name = unicodedata.normalize("NFC", text(where, key, value))
    if not SWEEP_NAME.fullmatch(name):
        raise ConfigProblem(key, f"{name!r}: use only letters, digits, '_', '-', '.'")
    return name


def command(where: Where, key: str, value: Any) -> str:
    line = text(where, key, value)
    try:
        if not shlex.split(line):
            raise ValueError("empty command")
    except ValueError as exc:
        raise ConfigProblem(key, f"cannot split the command: {exc}") from None
    return line


def algorithm(where: Where, key: str, value: Any) -> str:
    """A registered algorithm: no silent fallback to another. Whether its packages are
    installed is asked only by a sweep (`loading.check_sampler`)."""
    algorithm_class(value)  # raises UnknownAlgorithm, with the nearest name
    return value


def parameters(where: Where, key: str, value: Any) -> SearchSpace:
    if not isinstance(value, dict):
        raise ConfigProblem(key, "expected a mapping of parameter names to values")
    if not value:
        raise ConfigProblem(key, "empty: give at least one parameter")
    for name in value:
        if not isinstance(name, str) or not PARAMETER_NAME.fullmatch(name):
            allowed = "letters, digits, spaces, '_', '-', '.', '/'"
            raise ConfigProblem(f"{key}.{name}", f"parameter names use {allowed}")
        if len(name) > MAX_PARAMETER_NAME:
            raise ConfigProblem(
                f"{key}.{name[:40]}...",
                f"a parameter name has at most {MAX_PARAMETER_NAME} characters (MLflow logs it as a "
                f"param key), this one {len(name)}",
            )
    try:
        return SearchSpace.parse(value)
    except SpaceError as exc:
        raise exc.under(key) from None


def objective(where: Where, key: str, value: Any) -> Objective:
    """`{direction, metric, target}` (one objective) or `{metrics: [{name, direction}, ...]}`."""
    if not isinstance(value, dict):
        raise ConfigProblem(key, "expected a mapping with 'direction' and 'metric' (or 'metrics')")
    for name in value:
        if name not in SPEC_KEYS:
            raise ConfigProblem(f"{key}.{name}", "unknown key" + did_you_mean(str(name), sorted(SPEC_KEYS)))
    constraints = _constraints(f"{key}.constraints", value.get("constraints", []))
    target = value.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | float)):
        raise ConfigProblem(f"{key}.target", f"expected a number, got {shown(target)}")
    if "metrics" in value:
        for single in ("metric", "direction"):
            if single in value:
                raise ConfigProblem(
                    f"{key}.{single}", "give either 'metric'/'direction' or 'metrics', not both"
                )
        metrics = _metrics(where, f"{key}.metrics", value["metrics"])
        if len(metrics) == 1:
            return Objective(metrics[0].direction, metrics[0].name, target=target, constraints=constraints)
        if target is not None:
            raise ConfigProblem(f"{key}.target", "a target needs a single objective, not several 'metrics'")
        return Objective(metrics[0].direction, None, metrics=metrics, constraints=constraints)
    if "metric" not in value:
        raise ConfigProblem(f"{key}.metric", "missing: name the metric the trials log")
    direction = _direction(where, f"{key}.direction", value.get("direction", "minimize"))
    metric = text(where, f"{key}.metric", value["metric"])
    return Objective(direction, metric, target=target, constraints=constraints)


def _constraints(key: str, value: Any) -> tuple:
    """`["latency_ms <= 50", ...]`: metrics a result must satisfy."""
    from ..constraints import ConstraintError, parse_constraints

    try:
        return parse_constraints(value)
    except ConstraintError as exc:
        raise ConfigProblem(key if exc.index < 0 else f"{key}[{exc.index}]", str(exc)) from None


def _direction(where: Where, key: str, direction: Any) -> str:
    if direction not in DIRECTIONS:
        raise ConfigProblem(key, f"expected 'minimize' or 'maximize', got {shown(direction)}")
    return direction


def _metrics(where: Where, key: str, value: Any) -> tuple:
    """Several objectives: a list of `{name, direction}`, each name once."""
    if not isinstance(value, list) or not value:
        raise ConfigProblem(key, "expected a list of {name, direction} mappings")
    metrics: list[Metric] = []
    for i, item in enumerate(value):
        at = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ConfigProblem(at, f"expected a mapping {{name, direction}}, got {shown(item)}")
        for name in item:
            if name not in ("name", "direction"):
                raise ConfigProblem(f"{at}.{name}", "unknown key; allowed: name, direction")
        if "name" not in item:
            raise ConfigProblem(f"{at}.name", "missing: name the metric the trials log")
        metric = Metric(
            text(where, f"{at}.name", item["name"]),
            _direction(where, f"{at}.direction", item.get("direction", "minimize")),
        )
        if any(m.name == metric.name for m in metrics):
            raise ConfigProblem(f"{at}.name", f"{metric.name!r} is listed twice")
        metrics.append(metric)
    return tuple(metrics)


def as_given(where: Where, key: str, value: Any) -> Any:
    """A value checked later, by the section that knows what it goes with."""
    return value


def warm_start(where: Where, key: str, value: Any) -> list:
    """`[{sweep: "exp/name"}, {runs: "<filter string>", experiment: "<name>"}]`."""
    return list(parse_warm_start(value, key))
