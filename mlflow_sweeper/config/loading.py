"""Load and validate a sweep config before anything touches a storage.

`load_config` reads the file, checks its keys against the schema, then loads it in sections:
identity, what a trial runs, the search, the storages, the objective, failure handling. Each
value is checked by its schema entry; a section adds only the rules that join several keys.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..command_line import command_problem, conditional_problem
from ..errors import ConfigError, ConfigProblem, in_config_file
from ..expansion import expand_config, hidden_values
from ..hints import did_you_mean
from ..invocation import mlflow_run_directory, starting_directories, under_mlflow_run
from ..pruning import EarlyStopping, parse_early_stopping
from ..search.algorithms import OWN_KEYS, algorithm_class, check_own_keys, rehearse
from ..secrets import MASK
from ..storages.urls import same_database
from .checks import Where
from .model import SweepConfig
from .objective import Objective
from .register import register_problem
from .schema import BY_NAME, KEYS, REQUIRED_KEYS
from .shown import shown
from .warm_start import parse_warm_start, with_shown
from .whole_bounds import warn_whole_bounds

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


# YAML 1.2 floats (`1e-3` without a dot is a float, as users mean it); refine writes with the same
# rule, so a string that reads as one is quoted.
YAML_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
YAML_FLOAT_FIRST = list("-+0123456789.")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", YAML_FLOAT, YAML_FLOAT_FIRST)


def parse_yaml(text: str) -> Any:
    """YAML text read as a config file is (`1e-3` a float); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: Path) -> dict[str, Any]:
    with in_config_file(path.resolve()):  # errors name the file as every other config error does
        return _read_yaml(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigProblem(None, "no such file") from None
    except IsADirectoryError:
        raise ConfigProblem(None, "is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigProblem(None, f"cannot read the file ({exc})") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ConfigProblem(None, f"{kind}{at}: {problem}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigProblem(None, f"a config must be a YAML mapping of keys, this file is {kind}")
    return data


class Values:
    """The file's top-level values, each loaded through its schema entry on first use."""

    def __init__(self, where: Where, data: dict[str, Any]):
        for key in data:
            if not isinstance(key, str) or key not in KEYS:
                raise ConfigProblem(str(key), "unknown key" + did_you_mean(str(key), sorted(KEYS)))
        data = dict(data)
        for key, value in list(data.items()):
            if value is not None:
                continue
            entry = BY_NAME[key]
            if entry.required:
                raise ConfigProblem(key, "has no value (required)")
            if entry.default is not None:
                raise ConfigProblem(
                    key, f"has no value: give one, or remove the key for the default ({shown(entry.default)})"
                )
            del data[key]  # an empty optional key means what leaving it out means
        for key in REQUIRED_KEYS:
            if key not in data:
                raise ConfigProblem(key, "missing (required)")
        self.where = where
        self.data = data

    def given(self, name: str) -> bool:
        return name in self.data

    def given_otherwise(self, name: str) -> bool:
        """Given with a value other than its default (a template's leftover default is no choice)."""
        if not self.given(name):
            return False
        default = BY_NAME[name].default
        return default is None or self[name] != BY_NAME[name].load(self.where, name, copy.deepcopy(default))

    def __getitem__(self, name: str) -> Any:
        """The value as loaded; an absent key gives its default (loaded too, unless None)."""
        key = BY_NAME[name]
        value = self.data[name] if name in self.data else copy.deepcopy(key.default)
        return None if value is None else key.load(self.where, name, value)


def _identity(values: Values) -> dict[str, Any]:
    return {"experiment": values["experiment"], "sweep_name": values["sweep_name"]}


def _trial(values: Values) -> dict[str, Any]:
    """What one trial runs: an MLflow project entry point, or a plain command."""
    has_entry, has_command = values.given("entry_point"), values.given("command")
    if has_entry == has_command:
        raise ConfigProblem(
            "entry_point" if has_entry else "command",
            "give exactly one of 'entry_point' (an MLflow project entry point) or 'command'",
        )
    if has_command:
        values["command"]  # checked first: a bad command is named before the keys it excludes
        for key in ENTRY_POINT_ONLY:
            if values.given_otherwise(key):
                raise ConfigProblem(key, "only applies to 'entry_point' trials, not to 'command'")
    elif values.given_otherwise("arg_style"):
        raise ConfigProblem("arg_style", "only applies to 'command' trials, not to 'entry_point'")
    return {name: values[name] for name in ("command", "entry_point", *ENTRY_POINT_ONLY, "arg_style")}


def _search(values: Values) -> dict[str, Any]:
    """The algorithm, the space it searches, its budget, seed and sampler options, and the keys
    of its own; each check is the algorithm's."""
    name = values["algorithm"]
    algorithm = algorithm_class(name)
    space = values["parameters"]
    max_trials = values["max_trials"]
    algorithm.check_budget(max_trials)
    algorithm.check_space(space)
    options = values["sampler_options"]
    algorithm.check_options(options)
    seed = values["seed"]
    check_own_keys(name, [key for key in OWN_KEYS if values.given(key)])
    own = {key: values[key] for key in algorithm.own_keys if values.given(key)}
    return {
        "algorithm": name,
        "space": space,
        "max_trials": max_trials,
        "seed": seed,
        "sampler_options": options,
        **algorithm.load_own_keys(space, own),
    }


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


def _early_stopping(values: Values, objective: Objective) -> EarlyStopping | None:
    """`early_stopping`: a pruner over the one objective's metric history."""
    return parse_early_stopping(values["early_stopping"], objective_count=len(objective.names))


def _failure_handling(values: Values) -> dict[str, Any]:
    return {name: values[name] for name in ("max_retries", "stale_after", "trial_timeout", "fail_fast")}


def _training(values: Values, backend: str) -> dict[str, Any]:
    """Devices for local trials and the patterns that make a failed point infeasible."""
    devices = values["devices"]
    if devices is not None and backend != "local":
        from ..preflight.environment import installed_backends

        known = installed_backends()
        if backend not in known:  # one message for both mistakes
            raise ConfigProblem(
                "devices",
                f"applies to local trials only, and backend {backend!r} is not a backend known here "
                f"either ({', '.join(known)})",
            )
        raise ConfigProblem(
            "devices",
            f"applies to local trials only, not to backend {backend!r}: "
            "request the backend's resources (GPUs) in backend_config instead",
        )
    per_trial = values["devices_per_trial"]
    if isinstance(devices, tuple) and per_trial > len(devices):
        raise ConfigProblem(
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
    if config.command is not None:
        problem = command_problem(config.command, [*config.space.axes, *config.space.fixed])
        problem = problem or conditional_problem(config.command, config.space.conditional_names())
        if problem:
            raise ConfigProblem("command", problem)


def _check_separate_stores(config: SweepConfig) -> None:
    """Optuna and MLflow each keep their schema's version in a table of the same name: one
    database cannot hold both (MLflow would fail to open it, after Optuna wrote its study)."""
    if config.mlflow_storage and same_database(config.optuna_storage, config.mlflow_storage):
        raise ConfigProblem(
            "mlflow_storage",
            "is the same database as optuna_storage; Optuna and MLflow each need a database of "
            "their own (e.g. sqlite:///optuna.db and sqlite:///mlflow.db, or two PostgreSQL databases)",
        )


def _check_hidden_values(config: SweepConfig) -> None:
    """A backend other than the local one is handed its parameters and project by MLflow
    Projects, which records them on the run: a value from `${VAR}` (or a URL's password) would
    be written there as it is."""
    if config.backend == "local" or config.entry_point is None:
        return
    if config.hidden:
        raise ConfigProblem(
            f"parameters.{next(iter(config.hidden))}",
            f"a value from ${{VAR}} cannot be passed to backend {config.backend!r}: MLflow Projects "
            "records the parameters it launches with; give the trial the secret through the "
            "backend's own environment (backend_config) instead",
        )
    if config.shown_project != config.project:
        raise ConfigProblem(
            "project",
            f"a project URI holding a secret (a value from ${{VAR}}, a password) cannot be passed to "
            f"backend {config.backend!r}: MLflow Projects records the URI on the run; give the "
            "backend its credentials its own way (a git credential helper, backend_config)",
        )


LAUNCH_ONLY = ("command", "backend_config")  # keys only launching a trial reads


def _expanded(written: object, to_run: bool) -> tuple[dict, dict]:
    """The config with its `${VAR}`s expanded, as the agent uses it and as it is shown; when it
    is not `to_run`, an unset variable without a default in `LAUNCH_ONLY` keys reads as `***`
    (an operator checking progress need not hold the trials' secrets)."""
    if to_run or not isinstance(written, dict):
        return expand_config(written), expand_config(written, shown=True)
    data, shown = {}, {}
    for key, value in written.items():
        missing = MASK if key in LAUNCH_ONLY else None
        data[key] = expand_config({key: value}, missing=missing)[key]
        shown[key] = expand_config({key: value}, shown=True, missing=missing)[key]
    return data, shown


def _shown_warm_start(shown: dict) -> tuple:
    """`warm_start` as the config shows (checked already, as given: the real one is the same)."""
    given = shown.get("warm_start") if isinstance(shown, dict) else None
    return parse_warm_start(given) if given is not None else ()


def _check_names_written_out(data: dict, shown: dict) -> None:
    """The names a sweep is known by show as they are in MLflow: its experiment, its runs' names
    and `sweeper.sweep` tags, its metrics' keys (its constraints' too, which Optuna records as
    written), its registered model. A value from the environment never shows there, so none may
    be part of a name (a `${VAR:-default}` whose variable is unset is written out)."""
    names = [
        ("experiment",),
        ("sweep_name",),
        ("spec", "metric"),
        ("register", "model_name"),
        ("register", "alias"),
    ]
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    for listed, inner in (("metrics", ("name",)), ("constraints", ())):  # a constraint names its metric
        if isinstance(spec.get(listed), list):
            names += [("spec", listed, i, *inner) for i in range(len(spec[listed]))]
    for path in names:
        real, as_shown = _at(data, path), _at(shown, path)
        if isinstance(real, str) and real != as_shown:
            key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)[1:]
            raise ConfigProblem(
                key,
                f"{as_shown!r} takes a value from the environment (${{VAR}}); this name shows in "
                "MLflow as it is (the experiment, run names, tags, metric keys, the model registry), "
                "where such values never appear: write the name out",
            )


def _at(tree: object, path: tuple) -> object:
    for part in path:
        if isinstance(part, int):
            tree = tree[part] if isinstance(tree, list) and part < len(tree) else None
        else:
            tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _check_register(config: SweepConfig) -> None:
    problem = register_problem(config)
    if problem:
        raise ConfigProblem("register", problem)


def load_config(path_text: str | os.PathLike[str], to_run: bool = True) -> SweepConfig:
    """Read, validate and resolve one config file. Raises ConfigError; writes nothing. `to_run`
    False: for a command that launches no trial (`status`, `report`...), so a variable only the
    trials' launch uses (in `command`, `backend_config`) may be unset there."""
    path = Path(path_text).expanduser()
    with in_config_file(path.resolve()):
        written = read_yaml(path)
        data, shown = _expanded(written, to_run)
        _check_names_written_out(data, shown)
        hidden = hidden_values(data.get("parameters"), shown.get("parameters"))
        if hidden:  # the space holds the values as shown; trials get the real ones
            data = {**data, "parameters": shown["parameters"]}
        values = Values(Where(path.resolve()), data)
        objective = _objective(values)
        trial = _trial(values)
        config = SweepConfig(
            path=values.where.path,
            **_identity(values),
            **trial,
            **_search(values),
            **_storages(values),
            objective=objective,
            early_stopping=_early_stopping(values, objective),
            **_failure_handling(values),
            register=values["register"],
            warm_start=with_shown(values["warm_start"], _shown_warm_start(shown)),
            **_training(values, trial["backend"]),
            raw=shown,
            written=written,
            hidden=hidden,
        )
        _check_placeholders(values, config)
        _check_separate_stores(config)
        _check_hidden_values(config)
        _check_register(config)
        algorithm_class(config.algorithm).check_objective(config.objective)
    return config


def load_configs(paths: list[str], *, to_run: bool = False) -> list[SweepConfig]:
    """Validate every config first: one bad file stops the run before any sweep starts.

    `to_run`: the configs are about to be swept, so their samplers are checked too."""
    flat = [p.strip() for text in paths for p in str(text).split(",") if p.strip()]
    if not flat:
        raise ConfigError("<command line>", "config", "no config file given")
    configs = [load_config(located(p), to_run) for p in flat]
    refuse_one_sweep_defined_twice(configs)
    if to_run:
        for config in configs:
            check_sampler(config)
            warn_whole_bounds(config.path, config.raw.get("parameters"))
    return configs


def refuse_one_sweep_defined_twice(configs: list[SweepConfig]) -> None:
    """Two configs of one command naming the same sweep (name and Optuna storage) differently: a
    sweep would refuse the second as a changed config once the first had run, so every command
    refuses it first."""
    seen: dict[tuple[str, str], SweepConfig] = {}
    for config in configs:
        first = seen.setdefault((config.identity, config.optuna_storage), config)
        if first is not config and _fingerprint_text(first) != _fingerprint_text(config):
            raise ConfigError(
                str(config.path),
                "sweep_name",
                f"sweep '{config.identity}' is also defined, differently, by {first.path}: give one of "
                "them another sweep_name",
            )


def _fingerprint_text(config: SweepConfig) -> str:
    return json.dumps(config.fingerprint(), sort_keys=True, default=str)


def check_sampler(config: SweepConfig) -> None:
    """The sweep's sampler built and rehearsed in memory: what it needs is installed, and it
    takes `sampler_options` and searches this space (raises ConfigError). Only a sweep pays for
    it; `status`, `delete` and `report` read a config without running its sampler."""
    with in_config_file(config.path):
        rehearse(config)


def located(text: str) -> str:
    """A config path as the user meant it.

    `mlflow run <this project> -e sweep -P config=sweep.yaml` runs the entry point in this
    project's directory, not where the user typed the command: in a process MLflow Projects
    started, a relative path means the folder `mlflow run` was typed in, where it exists there
    (a file of the same name in this project, an example's, does not take its place: `-e delete`
    would delete another sweep); else this project's, else the working directory of another
    process that started this one, nearest first. Found nowhere, it is named in the folder
    `mlflow run` was typed in."""
    path = Path(text).expanduser()
    if path.is_absolute() or not under_mlflow_run():
        return text
    typed_in = mlflow_run_directory()
    if typed_in is not None and (typed_in / path).exists():
        return str(typed_in / path)
    if path.exists():
        return text
    for directory in starting_directories():
        if (directory / path).exists():
            return str(directory / path)
    return str(typed_in / path) if typed_in is not None else text
