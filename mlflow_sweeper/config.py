"""Load and validate a sweep config before anything touches a storage."""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .space import SearchSpace, SpaceError

ALGORITHMS = ("grid", "random", "tpe")
ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")
DIRECTIONS = ("minimize", "maximize")
SWEEP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

KEYS = {
    "experiment",
    "sweep_name",
    "entry_point",
    "project",
    "env_manager",
    "backend",
    "backend_config",
    "command",
    "algorithm",
    "parameters",
    "max_trials",
    "seed",
    "optuna_storage",
    "mlflow_storage",
    "output_dir",
    "spec",
    "max_retries",
    "stale_after",
    "trial_timeout",
}
SPEC_KEYS = {"direction", "metric"}
# Keys whose change does not change what the sweep searches: allowed on resume.
MUTABLE_KEYS = {"max_trials", "max_retries", "stale_after", "trial_timeout"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float, as YAML 1.2 does (PyYAML reads a string)."""


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


@dataclass(frozen=True)
class Objective:
    direction: str = "minimize"
    metric: str | None = None


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
    entry_point: str | None = None
    project: str = "."
    env_manager: str = "local"
    backend: str = "local"
    backend_config: dict[str, Any] | str = field(default_factory=dict)
    command: str | None = None
    max_retries: int = 1
    stale_after: float = 300.0
    trial_timeout: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

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
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.identity)
        return self.output_dir / "logs" / safe

    def fingerprint(self) -> dict[str, Any]:
        """What defines the sweep: a stored sweep whose fingerprint differs is refused."""
        return {
            "parameters": self.space.describe(),
            "algorithm": self.algorithm,
            "seed": self.seed,
            "direction": self.objective.direction,
            "metric": self.objective.metric,
        }

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


def _fail(path: Path, key: str | None, message: str) -> ConfigError:
    return ConfigError(str(path), key, message)


def _suggest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(path, None, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, None, "is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, None, f"cannot read the file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(path, None, f"YAML syntax error{where}: {problem}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise _fail(path, None, f"a config must be a YAML mapping of keys, this file is {kind}")
    return data


def resolve_storage_url(url: str, base: Path) -> str:
    """Make SQLite and journal file paths in a storage URL absolute against `base`."""
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        if rest.startswith("/") or rest.startswith(":memory:") or rest == "":
            return url
        path, sep, query = rest.partition("?")
        return f"sqlite:///{(base / path).resolve()}{sep}{query}"
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        path = path[2:] if path.startswith("//") else path
        return f"journal://{(base / path).resolve() if not os.path.isabs(path) else path}"
    if url.startswith("file:") or "://" not in url:
        return url  # rejected later with a clear message for the storage that needs a scheme
    return url


def _check_storage(path: Path, key: str, url: Any, *, optuna: bool) -> str:
    if not isinstance(url, str) or not url.strip():
        raise _fail(path, key, f"expected a storage URL string, got {url!r}")
    from .storages import check_mlflow_url, check_optuna_url

    problem = check_optuna_url(url) if optuna else check_mlflow_url(url)
    if problem:
        raise _fail(path, key, problem)
    return url


def _int(path: Path, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, key, f"expected a whole number, got {value!r}")
    if value < minimum:
        raise _fail(path, key, f"must be at least {minimum}, got {value}")
    return value


def _seconds(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(path, key, f"expected a positive number of seconds, got {value!r}")
    return float(value)


def _str(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, key, f"expected a non-empty string, got {value!r}")
    return value


def load_config(path_text: str | os.PathLike[str]) -> SweepConfig:
    """Read, validate and resolve one config file. Raises ConfigError; writes nothing."""
    path = Path(path_text).expanduser()
    data = read_yaml(path)
    path = path.resolve()
    base = path.parent

    for key in data:
        if not isinstance(key, str) or key not in KEYS:
            raise _fail(path, str(key), "unknown key" + _suggest(str(key), KEYS))
    for key in ("experiment", "sweep_name", "parameters"):
        if key not in data:
            raise _fail(path, key, "missing (required)")

    experiment = _str(path, "experiment", data["experiment"])
    sweep_name = _str(path, "sweep_name", data["sweep_name"])
    if not SWEEP_NAME.match(sweep_name):
        raise _fail(path, "sweep_name", f"{sweep_name!r}: use only letters, digits, '_', '-', '.'")

    has_entry, has_command = "entry_point" in data, "command" in data
    if has_entry == has_command:
        raise _fail(
            path,
            "entry_point" if has_entry else "command",
            "give exactly one of 'entry_point' (an MLflow project entry point) or 'command'",
        )
    if has_command:
        command = _str(path, "command", data["command"])
        for key in ("project", "env_manager", "backend", "backend_config"):
            if key in data:
                raise _fail(path, key, "only applies to 'entry_point' trials, not to 'command'")
        import shlex

        try:
            if not shlex.split(command):
                raise ValueError("empty command")
        except ValueError as exc:
            raise _fail(path, "command", f"cannot split the command: {exc}") from None
    else:
        command = None
    entry_point = _str(path, "entry_point", data["entry_point"]) if has_entry else None

    project = _str(path, "project", data.get("project", "."))
    if "://" not in project and not project.startswith("git@"):
        project = str((base / project).resolve())
    env_manager = data.get("env_manager", "local")
    if env_manager not in ENV_MANAGERS:
        raise _fail(path, "env_manager", f"expected one of {', '.join(ENV_MANAGERS)}, got {env_manager!r}")
    backend = _str(path, "backend", data.get("backend", "local"))
    backend_config = data.get("backend_config", {})
    if isinstance(backend_config, str):
        backend_config = str((base / backend_config).resolve())
        if not os.path.isfile(backend_config):
            raise _fail(path, "backend_config", f"no such JSON file: {backend_config}")
        try:
            with open(backend_config, encoding="utf-8") as fh:
                json.load(fh)
        except (OSError, ValueError) as exc:
            raise _fail(path, "backend_config", f"not a readable JSON file: {exc}") from None
    elif not isinstance(backend_config, dict):
        raise _fail(path, "backend_config", "expected a mapping or the path of a JSON file")

    algorithm = data.get("algorithm", "grid")
    if algorithm not in ALGORITHMS:
        raise _fail(
            path,
            "algorithm",
            f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
            + _suggest(str(algorithm), set(ALGORITHMS)),
        )

    parameters = data["parameters"]
    if not isinstance(parameters, dict):
        raise _fail(path, "parameters", "expected a mapping of parameter names to values")
    if not parameters:
        raise _fail(path, "parameters", "empty: give at least one parameter")
    for name in parameters:
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.\-/ ]+$", name):
            raise _fail(path, f"parameters.{name}", "parameter names use letters, digits, '_', '-', '.', '/'")
    try:
        space = SearchSpace.parse(parameters)
    except SpaceError as exc:
        raise _fail(path, f"parameters.{exc.key}", str(exc)) from None

    max_trials = data.get("max_trials")
    if max_trials is not None:
        max_trials = _int(path, "max_trials", max_trials, 1)
    grid_axes = space.grid_axes()
    if algorithm == "grid":
        if not space.axes:
            raise _fail(path, "parameters", "a grid needs at least one list or stepped range to sweep")
        if grid_axes is None:
            name = next(n for n, a in space.axes.items() if a.grid_values() is None)
            raise _fail(path, f"parameters.{name}.step", "a grid needs a 'step' for a float range")
    elif max_trials is None:
        raise _fail(path, "max_trials", f"required for algorithm {algorithm!r} (the sweep's budget)")
    if algorithm == "tpe" and not space.axes:
        raise _fail(path, "parameters", "nothing to search: every parameter is fixed")

    seed = data.get("seed")
    if seed is not None:
        seed = _int(path, "seed", seed, 0)

    output_dir = (base / _str(path, "output_dir", data.get("output_dir", "./sweeps"))).resolve()

    optuna_url = data.get("optuna_storage")
    if optuna_url is None:
        optuna_url = f"sqlite:///{output_dir / 'optuna.db'}"
    optuna_url = resolve_storage_url(_check_storage(path, "optuna_storage", optuna_url, optuna=True), base)
    mlflow_url = data.get("mlflow_storage")
    if mlflow_url is not None:
        mlflow_url = resolve_storage_url(
            _check_storage(path, "mlflow_storage", mlflow_url, optuna=False), base
        )

    spec = data.get("spec")
    if spec is None:
        objective = Objective()
    else:
        if not isinstance(spec, dict):
            raise _fail(path, "spec", "expected a mapping with 'direction' and 'metric'")
        for key in spec:
            if key not in SPEC_KEYS:
                raise _fail(path, f"spec.{key}", "unknown key" + _suggest(str(key), SPEC_KEYS))
        if "metric" not in spec:
            raise _fail(path, "spec.metric", "missing: name the metric the trials log")
        direction = spec.get("direction", "minimize")
        if direction not in DIRECTIONS:
            raise _fail(path, "spec.direction", f"expected 'minimize' or 'maximize', got {direction!r}")
        objective = Objective(direction, _str(path, "spec.metric", spec["metric"]))

    max_retries = _int(path, "max_retries", data.get("max_retries", 1), 0)
    stale_after = _seconds(path, "stale_after", data.get("stale_after", 300))
    trial_timeout = data.get("trial_timeout")
    if trial_timeout is not None:
        trial_timeout = _seconds(path, "trial_timeout", trial_timeout)

    return SweepConfig(
        path=path,
        experiment=experiment,
        sweep_name=sweep_name,
        space=space,
        algorithm=algorithm,
        max_trials=max_trials,
        seed=seed,
        optuna_storage=optuna_url,
        mlflow_storage=mlflow_url,
        output_dir=output_dir,
        objective=objective,
        entry_point=entry_point,
        project=project,
        env_manager=env_manager,
        backend=backend,
        backend_config=backend_config,
        command=command,
        max_retries=max_retries,
        stale_after=stale_after,
        trial_timeout=trial_timeout,
        raw=data,
    )


def load_configs(paths: list[str]) -> list[SweepConfig]:
    """Validate every config first: one bad file stops the run before any sweep starts."""
    flat = [p.strip() for text in paths for p in str(text).split(",") if p.strip()]
    if not flat:
        raise ConfigError("<command line>", "config", "no config file given")
    return [load_config(p) for p in flat]
