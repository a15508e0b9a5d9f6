"""`register:` as configured: the best trial's model to put in the MLflow Model Registry, and
when a config cannot use it. Registering itself happens at the close (`ui/register.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigProblem
from ..hints import did_you_mean
from .shown import shown

if TYPE_CHECKING:
    from .checks import Where
    from .model import SweepConfig


@dataclass(frozen=True)
class Registration:
    """`register:` as configured."""

    model_name: str
    artifact_path: str = "model"
    alias: str | None = None


def parse_register(where: Where, key: str, value: Any) -> Registration:
    """The `register` mapping: `model_name` (required), `artifact_path`, `alias`."""
    if not isinstance(value, dict):
        raise ConfigProblem(
            key, f"expected a mapping with model_name (and artifact_path, alias), got {shown(value)}"
        )
    known = ("model_name", "artifact_path", "alias")
    for name in value:
        if name not in known:
            raise ConfigProblem(f"{key}.{name}", "unknown key" + did_you_mean(str(name), known))
    if "model_name" not in value:
        raise ConfigProblem(f"{key}.model_name", "missing (required): the registered model's name")
    for name in known:
        given = value.get(name)
        if name in value and (not isinstance(given, str) or not given.strip()):
            raise ConfigProblem(f"{key}.{name}", f"expected a non-empty string, got {shown(given)}")
    from ..compat import registry_name_problem

    for name, kind in (("model_name", "name"), ("alias", "alias")):
        problem = registry_name_problem(kind, value[name]) if name in value else None
        if problem:
            raise ConfigProblem(f"{key}.{name}", problem)
    path = value.get("artifact_path", "model").strip("/")
    return Registration(value["model_name"], path, value.get("alias"))


def register_problem(config: SweepConfig) -> str | None:
    """Why `register` cannot apply to this config, or None."""
    if config.register is None:
        return None
    if config.objective.multi:
        return (
            "needs one best trial, and several objectives have a Pareto front instead: "
            "remove `register`, or sweep one objective"
        )
    if config.objective.metric is None:
        return "needs an objective to pick the best trial: give spec.metric and spec.direction"
    return None
