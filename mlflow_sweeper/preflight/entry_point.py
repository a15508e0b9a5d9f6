"""The entry point a sweep runs and its parameters, as the MLproject declares them: which names
exist, which values they accept, what a trial is given (`path` values made absolute against the
project) and what its run records (every parameter, defaults included, as `mlflow run` does)."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import compat
from ..command_line import value_text
from ..errors import ProjectError
from ..hints import did_you_mean, near_name
from .source import local_path

SCRIPT_COMMANDS = (".py", ".sh", ".R")  # entry points MLflow runs without an MLproject entry


def get_entry_point(project: Any, name: str, work_dir: str) -> Any:
    """The entry point `name`: declared in the MLproject, or a script of the project (`.py`, `.sh`)
    as MLflow runs one. An unknown name fails with the nearest declared name and the list."""
    names = compat.entry_point_names(project)
    if name not in names:
        if name.endswith(SCRIPT_COMMANDS):
            script = Path(work_dir) / name
            if not script.is_file():
                raise ProjectError(f"entry_point: no script {name!r} in the project: {script} does not exist")
        else:
            listed = (
                f"its entry points are: {', '.join(names)}"
                if names
                else "it has no MLproject entry points (name a .py or .sh script of the project instead)"
            )
            raise ProjectError(
                f"entry_point: no entry point {name!r} in the project {work_dir}"
                f"{did_you_mean(name, names)}; {listed}"
            )
    try:
        return project.get_entry_point(name)
    except Exception as exc:  # noqa: BLE001 - MLflow's own refusal, worded by MLflow
        raise ProjectError(f"entry_point: {' '.join(str(exc).split())}") from None


# ---- the declared parameters -------------------------------------------------------------------


def declared_parameters(entry_point: Any) -> dict[str, Any]:
    """name -> MLflow Parameter (with .type and .default), in MLproject order."""
    return dict(entry_point.parameters)


def check_declared(entry_point: Any, names: Iterable[str]) -> None:
    """Every swept or fixed parameter is one the entry point declares. An entry point that
    declares none takes whatever it is given (MLflow appends `--name value`)."""
    declared = declared_parameters(entry_point)
    if not declared:
        return
    for name in names:
        if name not in declared:
            near = near_name(name, declared)
            hint = f"did you mean {near!r}? " if near else ""
            raise ProjectError(
                f"parameters.{name}: entry point {entry_point.name!r} declares no parameter {name!r} "
                f"({hint}it declares: {', '.join(declared)})"
            )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_uri(text: str) -> bool:
    """As MLflow Projects judges a `uri` parameter: it has a scheme."""
    return bool(urllib.parse.urlparse(text).scheme)


# MLproject type -> (does a value fit, what a misfit is): each would fail every trial alike, at
# launch (a `uri`: MLflow refuses the run) or in the training code (a `float`: MLflow documents
# the check and leaves it there).
TYPED_VALUES: dict[str, tuple[Callable[[str], bool], str]] = {
    "float": (_is_number, "is not a number"),
    "uri": (_is_uri, "is not a URI (it needs a scheme: s3://bucket/data, file:///abs/path)"),
}


def check_typed_values(entry_point: Any, candidates: dict[str, list[Any]]) -> None:
    """Every value a trial may be given fits the type its MLproject declares (TYPED_VALUES)."""
    declared = declared_parameters(entry_point)
    for name, values in candidates.items():
        kind = getattr(declared.get(name), "type", None)
        if kind not in TYPED_VALUES:
            continue
        fits, misfit = TYPED_VALUES[kind]
        for value in values:
            if not fits(value_text(value)):
                raise ProjectError(
                    f"parameters.{name}: entry point {entry_point.name!r} declares {name!r} a {kind}, "
                    f"and {value!r} {misfit}"
                )


def check_required_given(entry_point: Any, names: Iterable[str]) -> None:
    """A parameter without a default in the MLproject must be given by the sweep: MLflow refuses
    the run otherwise, and would refuse every trial."""
    given = set(names)
    for name, parameter in declared_parameters(entry_point).items():
        if parameter.default is None and name not in given:
            raise ProjectError(
                f"parameters: entry point {entry_point.name!r} requires {name!r} (no default in its "
                f"MLproject); add '{name}' to the config's parameters"
            )


def check_absent_have_defaults(entry_point: Any, names: Iterable[str]) -> None:
    """Parameters that some trials leave out (conditional parameters) need an MLproject default,
    or MLflow refuses exactly those trials."""
    declared = declared_parameters(entry_point)
    for name in names:
        parameter = declared.get(name)
        if parameter is not None and parameter.default is None:
            raise ProjectError(
                f"parameters.{name}: some trials do not set it, but entry point {entry_point.name!r} "
                f"gives it no default; add 'default:' to '{name}' in the MLproject"
            )


def full_parameters(entry_point: Any, given: Mapping[str, Any]) -> dict[str, str]:
    """What `mlflow run` logs for a run: every declared parameter (the given value, else the
    MLproject default) in MLproject order, then the given ones the entry point does not declare.
    Values are logged as given, not shell-quoted and not resolved (a path stays as written)."""
    result: dict[str, str] = {}
    for name, parameter in declared_parameters(entry_point).items():
        if name in given:
            result[name] = value_text(given[name])
        elif parameter.default is not None:
            result[name] = value_text(parameter.default)
    for name, value in given.items():
        if name not in result:
            result[name] = value_text(value)
    return result


# ---- `path` parameters -------------------------------------------------------------------------


def _resolved(value: Any, project_dir: str) -> str | None:
    local = local_path(value_text(value))
    if local is None:
        return None
    return os.path.normpath(os.path.join(project_dir, os.path.expanduser(local)))


def path_parameters(entry_point: Any) -> list[str]:
    return [name for name, p in declared_parameters(entry_point).items() if p.type == "path"]


def check_path_values(
    entry_point: Any,
    candidates: Mapping[str, Iterable[Any]],
    project_dir: str,
    shown: Mapping[str, Mapping[Any, Any]] | None = None,
) -> None:
    """Every local value a `path` parameter can take (its swept values, its fixed value, else its
    MLproject default) exists, relative values read against the project directory. `shown`: per
    parameter, {real: shown} for values from `${VAR}`: named as they show, their path unsaid."""
    declared = declared_parameters(entry_point)
    for name in path_parameters(entry_point):
        values = list(candidates[name]) if name in candidates else [declared[name].default]
        hidden = (shown or {}).get(name, {})
        for value in values:
            if value is None:
                continue
            path = _resolved(value, project_dir)
            if path is not None and not os.path.exists(path):
                origin = "its MLproject default" if name not in candidates else "value"
                missing = "no such file or directory" + ("" if value in hidden else f": {path}")
                raise ProjectError(
                    f"parameters.{name}: path parameter {name!r} of entry point {entry_point.name!r}: "
                    f"{missing} ({origin} {value_text(hidden.get(value, value))!r}; relative "
                    f"paths resolve against the project directory {project_dir})"
                )


def resolve_path_parameters(entry_point: Any, params: Mapping[str, Any], project_dir: str) -> dict[str, Any]:
    """A trial's parameters with every local `path` value absolute against the project directory,
    MLproject defaults included (MLflow would resolve them against the agent's working directory)."""
    result = dict(params)
    declared = declared_parameters(entry_point)
    for name in path_parameters(entry_point):
        value = result.get(name, declared[name].default)
        if value is None:
            continue
        path = _resolved(value, project_dir)
        if path is not None:
            result[name] = path
    return result
