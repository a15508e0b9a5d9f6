"""Load and validate a sweep config before anything touches a storage.

`load_config` reads the file, checks its keys against the schema, then loads it in sections:
identity, what a trial runs, the search, the storages, the objective, failure handling. Each
value is checked by its schema entry; a section adds only the rules that join several keys.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .checks import Where, suggest
from .model import Objective, SweepConfig
from .schema import BY_NAME, KEYS, REQUIRED_KEYS

ENTRY_POINT_ONLY = ("project", "env_manager", "backend", "backend_config")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float, as YAML 1.2 does (PyYAML reads a string), and
    refuses a key given twice in one mapping (PyYAML keeps the last one, silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: keys given beside it override the merged ones
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path) -> dict[str, Any]:
    where = Where(path.resolve())  # errors name the file as every other config error does
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise where.fail(None, "no such file") from None
    except IsADirectoryError:
        raise where.fail(None, "is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise where.fail(None, f"cannot read the file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise where.fail(None, f"{kind}{at}: {problem}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise where.fail(None, f"a config must be a YAML mapping of keys, this file is {kind}")
    return data


class Values:
    """The file's top-level values, each loaded through its schema entry on first use."""

    def __init__(self, where: Where, data: dict[str, Any]):
        for key in data:
            if not isinstance(key, str) or key not in KEYS:
                raise where.fail(str(key), "unknown key" + suggest(str(key), KEYS))
        data = dict(data)
        for key, value in list(data.items()):
            if value is not None:
                continue
            entry = BY_NAME[key]
            if entry.required:
                raise where.fail(key, "has no value (required)")
            if entry.default is not None:
                raise where.fail(
                    key, f"has no value: give one, or remove the key for the default ({entry.default!r})"
                )
            del data[key]  # an empty optional key means what leaving it out means
        for key in REQUIRED_KEYS:
            if key not in data:
                raise where.fail(key, "missing (required)")
        self.where = where
        self.data = data

    def given(self, name: str) -> bool:
        return name in self.data

    def __getitem__(self, name: str) -> Any:
        """The value as loaded; an absent key gives its default (loaded too, unless None)."""
        key = BY_NAME[name]
        value = self.data[name] if name in self.data else copy.deepcopy(key.default)
        return None if value is None else key.load(self.where, name, value)

    def fail(self, key: str | None, message: str) -> ConfigError:
        return self.where.fail(key, message)


def _identity(values: Values) -> dict[str, Any]:
    return {"experiment": values["experiment"], "sweep_name": values["sweep_name"]}


def _trial(values: Values) -> dict[str, Any]:
    """What one trial runs: an MLflow project entry point, or a plain command."""
    has_entry, has_command = values.given("entry_point"), values.given("command")
    if has_entry == has_command:
        raise values.fail(
            "entry_point" if has_entry else "command",
            "give exactly one of 'entry_point' (an MLflow project entry point) or 'command'",
        )
    if has_command:
        values["command"]  # checked first: a bad command is named before the keys it excludes
        for key in ENTRY_POINT_ONLY:
            if values.given(key):
                raise values.fail(key, "only applies to 'entry_point' trials, not to 'command'")
    elif values.given("arg_style"):
        raise values.fail("arg_style", "only applies to 'command' trials, not to 'entry_point'")
    return {name: values[name] for name in ("command", "entry_point", *ENTRY_POINT_ONLY, "arg_style")}


def _search(values: Values) -> dict[str, Any]:
    """The algorithm, the space it searches, its budget, seed and sampler options."""
    from ..algorithms import algorithm_class

    name = values["algorithm"]
    algorithm = algorithm_class(name)
    space = values["parameters"]
    max_trials = values["max_trials"]
    if algorithm.needs_max_trials and max_trials is None:
        raise values.fail("max_trials", f"required for algorithm {name!r} (the sweep's budget)")
    problem = algorithm.check_space(space)
    if problem:
        raise values.fail(*problem)
    options = values["sampler_options"]
    problem = algorithm.check_options(options)
    if problem:
        option, message = problem
        raise values.fail(f"sampler_options.{option}" if option else "sampler_options", message)
    return {
        "algorithm": name,
        "space": space,
        "max_trials": max_trials,
        "seed": values["seed"],
        "sampler_options": options,
        **_sensitivity(values, name, space),
    }


def _sensitivity(values: Values, algorithm: str, space) -> dict[str, Any]:
    """`base` and `points`: given only with `algorithm: sensitivity`, checked against the space."""
    from ..sensitivity import parse_sensitivity
    from ..space import SpaceError

    if algorithm != "sensitivity":
        for key in ("base", "points"):
            if values.given(key):
                raise values.fail(key, "only applies to 'algorithm: sensitivity'")
        return {}
    try:
        base, points = parse_sensitivity(space, values["base"], values["points"])
    except SpaceError as exc:
        raise values.fail(exc.key, str(exc)) from None
    return {"base": base or None, "points": points if values.given("points") else None}


def _storages(values: Values) -> dict[str, Any]:
    """Both storages (the Optuna one defaults to SQLite in output_dir) and output_dir."""
    output_dir = values["output_dir"]
    optuna_storage = values["optuna_storage"]
    if optuna_storage is None:
        default = f"sqlite:///{output_dir / 'optuna.db'}"
        optuna_storage = BY_NAME["optuna_storage"].load(values.where, "optuna_storage", default)
    return {
        "output_dir": output_dir,
        "optuna_storage": optuna_storage,
        "mlflow_storage": values["mlflow_storage"],
    }


def _objective(values: Values) -> Objective:
    return values["spec"] or Objective()


def _early_stopping(values: Values, objective: Objective):
    """`early_stopping`: a pruner over the one objective's metric history."""
    from ..pruning import parse_early_stopping

    raw = values["early_stopping"]
    return parse_early_stopping(raw, path=values.where.path, objective_count=len(objective.names))


def _failure_handling(values: Values) -> dict[str, Any]:
    return {name: values[name] for name in ("max_retries", "stale_after", "trial_timeout", "fail_fast")}


def _training(values: Values, backend: str) -> dict[str, Any]:
    """Devices for local trials and the patterns that make a failed point infeasible."""
    devices = values["devices"]
    if devices is not None and backend != "local":
        raise values.fail(
            "devices",
            f"applies to local trials only, not to backend {backend!r}: "
            "request the backend's resources (GPUs) in backend_config instead",
        )
    per_trial = values["devices_per_trial"]
    if isinstance(devices, tuple) and per_trial > len(devices):
        raise values.fail(
            "devices_per_trial", f"is {per_trial}, more than the {len(devices)} device(s) in 'devices'"
        )
    return {
        "devices": devices,
        "devices_per_trial": per_trial,
        "device_env": values["device_env"],
        "infeasible_when": values["infeasible_when"],
    }


def _check_placeholders(values: Values, config: SweepConfig) -> None:
    """Every `{name}` placeholder of `command` names a parameter of the space."""
    from ..command_line import command_problem

    if config.command is not None:
        problem = command_problem(config.command, [*config.space.axes, *config.space.fixed])
        if problem:
            raise values.fail("command", problem)


def _check_sensitivity_objective(values: Values, config: SweepConfig) -> None:
    """Sensitivity measures the spread of one objective per parameter."""
    if config.algorithm != "sensitivity":
        return
    if config.objective.multi:
        raise values.fail(
            "spec.metrics",
            "algorithm 'sensitivity' measures the spread of one objective: give spec.metric and "
            "spec.direction instead (or sweep each metric in a sweep of its own)",
        )
    if config.objective.metric is None:
        raise values.fail(
            "spec.metric",
            "algorithm 'sensitivity' measures how much each parameter moves an objective: "
            "give spec.metric (and spec.direction)",
        )


def load_config(path_text: str | os.PathLike[str]) -> SweepConfig:
    """Read, validate and resolve one config file. Raises ConfigError; writes nothing."""
    path = Path(path_text).expanduser()
    data = read_yaml(path)
    values = Values(Where(path.resolve()), data)
    objective = _objective(values)
    identity = _identity(values)
    trial = _trial(values)
    config = SweepConfig(
        path=values.where.path,
        **identity,
        **trial,
        **_search(values),
        **_storages(values),
        objective=objective,
        early_stopping=_early_stopping(values, objective),
        **_failure_handling(values),
        **_training(values, trial["backend"]),
        raw=data,
    )
    _check_placeholders(values, config)
    _check_sensitivity_objective(values, config)
    return config


def load_configs(paths: list[str], *, to_run: bool = False) -> list[SweepConfig]:
    """Validate every config first: one bad file stops the run before any sweep starts.

    `to_run`: the configs are about to be swept, so their samplers are checked too."""
    flat = [p.strip() for text in paths for p in str(text).split(",") if p.strip()]
    if not flat:
        raise ConfigError("<command line>", "config", "no config file given")
    configs = [load_config(located(p)) for p in flat]
    if to_run:
        for config in configs:
            check_sampler(config)
    return configs


def check_sampler(config: SweepConfig) -> None:
    """The sweep's sampler built and rehearsed in memory: what it needs is installed, and it
    takes `sampler_options` and searches this space (raises ConfigError). Only a sweep pays for
    it; `status`, `delete` and `report` read a config without running its sampler."""
    from ..algorithms.rehearsal import rehearsal_problem

    problem = rehearsal_problem(config)
    if problem:
        raise ConfigError(str(config.path), *problem)


def located(text: str) -> str:
    """A config path as the user meant it.

    `mlflow run <this project> -e sweep -P config=sweep.yaml` runs the entry point in this
    project's directory, not where the user typed the command: a relative path that does not
    exist here, in a process MLflow Projects started, is looked for in the working directories of
    the processes that started it, nearest first (the `mlflow run` process among them)."""
    path = Path(text).expanduser()
    if path.is_absolute() or path.exists() or "MLFLOW_RUN_ID" not in os.environ:
        return text
    for directory in _starting_directories():
        if (directory / path).exists():
            return str(directory / path)
    return text


def _starting_directories(depth: int = 6) -> list[Path]:
    import psutil

    here = Path.cwd()
    found: list[Path] = []
    try:
        ancestors = psutil.Process().parents()[:depth]
    except psutil.Error:
        return found
    for process in ancestors:
        try:
            directory = Path(process.cwd())
        except (psutil.Error, OSError):
            continue  # another user's process, or gone
        if directory != here and directory not in found:
            found.append(directory)
    return found
