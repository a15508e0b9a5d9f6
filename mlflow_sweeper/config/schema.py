"""The config schema, in one table: every top-level key, its default, whether it may change
when a sweep resumes, what it means and how its value is checked.

The allowed keys, the defaults of `SweepConfig`, the keys that may change on resume and the
hint a refused resume prints are all derived from `SCHEMA`; nothing else lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..command_line import ARG_STYLES  # the styles `build_argv` knows, named once there
from ..devices import load_devices, load_env_name
from ..search.algorithms import ALGORITHMS
from ..triage import DEFAULT_INFEASIBLE, load_patterns
from . import checks
from .register import parse_register

REQUIRED: Any = object()  # the default of a key the config must give
ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")


@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    doc: str
    load: Callable[[checks.Where, str, Any], Any]  # validates a given value, returns it as loaded
    mutable: bool = False  # may differ from the stored sweep's config when it resumes

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


AT_LEAST_0, AT_LEAST_1 = checks.whole(0), checks.whole(1)


OPTUNA_URL, MLFLOW_URL = checks.storage_url("optuna"), checks.storage_url("mlflow")

SCHEMA: tuple[Key, ...] = (
    # identity
    Key("experiment", REQUIRED, "MLflow experiment (created if missing)", checks.text),
    Key("sweep_name", REQUIRED, "letters, digits, '_', '-', '.'", checks.sweep_name),
    # what one trial runs: exactly one of entry_point or command
    Key("entry_point", None, "an entry point of the MLflow project at `project`", checks.text),
    Key("project", ".", "MLflow project URI: local path or git URI", checks.project_uri),
    Key("env_manager", "local", "local | virtualenv | uv | conda", checks.one_of(*ENV_MANAGERS)),
    Key("backend", "local", "local | kubernetes | databricks | a plugin's name", checks.text),
    Key("backend_config", {}, "mapping, or path to a JSON file", checks.backend_config),
    Key("command", None, "a plain command; parameters appended in `arg_style`", checks.command),
    Key(
        "arg_style",
        "name=value",
        "how `command` gets parameters: name=value | --name=value | --name value; fixed on resume, "
        "since it changes what a trial runs",
        checks.one_of(*ARG_STYLES),
    ),
    # the search
    Key(
        "algorithm",
        "grid",
        " | ".join(ALGORITHMS),
        checks.algorithm,
    ),
    Key("sampler_options", {}, "keyword arguments of the algorithm's Optuna sampler", checks.mapping),
    Key("parameters", REQUIRED, "the search space: lists, ranges and fixed values", checks.parameters),
    Key("max_trials", None, "budget of the whole sweep across agents", AT_LEAST_1, mutable=True),
    Key("seed", None, "sampler seed", AT_LEAST_0),
    Key("base", None, "sensitivity only: the base point {parameter: value}", checks.as_given),
    Key("points", None, "sensitivity only: values per range parameter (default 5)", checks.as_given),
    Key(
        "warm_start",
        [],
        'earlier results to start from: [{sweep: "exp/name"}, {runs: "<filter>", experiment: ...}]',
        checks.warm_start,
    ),
    # storages
    Key("optuna_storage", None, "Optuna storage URL (default: SQLite in output_dir)", OPTUNA_URL),
    Key("mlflow_storage", None, "MLflow tracking URI (default: MLflow's current one)", MLFLOW_URL),
    Key("output_dir", "./sweeps", "trial logs and local lock files", checks.local_path),
    # objective
    Key(
        "spec",
        None,
        "the objective: {direction, metric, target} or {metrics: [{name, direction}, ...]}; "
        '`constraints: ["latency_ms <= 50", ...]` (metrics a result must satisfy)',
        checks.objective,
    ),
    Key(
        "early_stopping",
        None,
        "stop bad trials from their metric history: {pruner, options, interval}",
        checks.as_given,
    ),
    # failure handling
    Key("max_retries", 1, "a failed trial runs again up to this many times", AT_LEAST_0, mutable=True),
    Key("stale_after", 300.0, "seconds without heartbeat: a trial is dead", checks.seconds, mutable=True),
    Key("trial_timeout", None, "seconds before a running trial is stopped", checks.seconds, mutable=True),
    Key("fail_fast", 3, "stop when this many first trials all fail (0: off)", AT_LEAST_0, mutable=True),
    # the MLflow UI
    Key(
        "register",
        None,
        "the best trial's model into the Model Registry: {model_name, artifact_path, alias}",
        parse_register,
    ),
    # devices and failure triage: how this host runs trials, not what the sweep is
    Key("devices", None, 'GPUs for local trials: auto | [0, 1, 2, 3] | "0,1"', load_devices, mutable=True),
    Key("devices_per_trial", 1, "devices each trial gets", AT_LEAST_1, mutable=True),
    Key(
        "device_env",
        "CUDA_VISIBLE_DEVICES",
        "the variable that carries a trial's devices (e.g. HIP_VISIBLE_DEVICES)",
        load_env_name,
        mutable=True,
    ),
    Key(
        "infeasible_when",
        tuple(DEFAULT_INFEASIBLE),
        "regexes on a failed trial's log tail: the point is infeasible, not retried ([]: off)",
        load_patterns,
        mutable=True,
    ),
)

BY_NAME: dict[str, Key] = {key.name: key for key in SCHEMA}
KEYS: frozenset[str] = frozenset(BY_NAME)
REQUIRED_KEYS: tuple[str, ...] = tuple(key.name for key in SCHEMA if key.required)
DEFAULTS: dict[str, Any] = {key.name: key.default for key in SCHEMA if not key.required}
MUTABLE_KEYS: frozenset[str] = frozenset(key.name for key in SCHEMA if key.mutable)
# Left out on resume, no change: the sweep keeps what it was created with (its earlier results).
KEPT_WHEN_LEFT_OUT: frozenset[str] = frozenset({"warm_start"})


def _hint() -> str:
    names = [key.name for key in SCHEMA if key.mutable]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    return f"Besides how a trial is run (its command or entry point), only {listed} may change on resume."


MUTABLE_HINT: str = _hint()
