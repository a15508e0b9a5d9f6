"""Checks an agent makes before it writes anything: a sweep that cannot run a single trial fails
at once, with exit 2 and one message, instead of after a study and a parent run exist.

Also the few rules a trial needs from the project, named once here: `path` parameters resolve
against the project directory, a trial run records every parameter of its entry point (defaults
included, as `mlflow run` does), and `python` in a trial is the agent's own interpreter unless the
user activated another environment.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import compat
from ..command_line import check_arg_style, command_problem, value_text
from ..errors import ConfigError, ProjectError
from ..storages.urls import mask
from ..tracking_store import explicit_tracking_uri

SCRIPT_COMMANDS = (".py", ".sh", ".R")  # entry points MLflow runs without an MLproject entry
ENV_TOOLS = {"uv": "uv", "virtualenv": "pyenv"}  # what MLflow's env managers run to build an env


def _near(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


# ---- the project -------------------------------------------------------------------------------


def _split_subdirectory(uri: str) -> tuple[str, str]:
    """`uri#sub/dir` as MLflow Projects reads it."""
    base, sep, sub = uri.partition("#")
    return (base, sub) if sep else (uri, "")


def is_remote_uri(uri: str) -> bool:
    """Whether MLflow fetches the project (git, zip over http, a local .zip) into a temporary
    directory rather than reading a directory."""
    base, _ = _split_subdirectory(uri)
    if base.startswith("git@") or base.endswith(".zip"):
        return True
    scheme = urllib.parse.urlparse(base).scheme
    return bool(scheme) and scheme != "file" and len(scheme) > 1  # "C:" is a drive, not a scheme


def local_project_dir(uri: str) -> str:
    """The absolute directory of a local project, or ProjectError naming the missing path.

    MLflow Projects treats a path that does not exist as a git URI and reports a git error; a
    user who mistyped a directory should read that the directory does not exist."""
    base, sub = _split_subdirectory(uri)
    if base.startswith("file:"):
        base = urllib.parse.urlparse(base).path
    root = Path(base).expanduser().resolve()
    if not root.exists():
        raise ProjectError(f"project: no such directory: {root}")
    if not root.is_dir():
        raise ProjectError(f"project: not a directory: {root}")
    directory = root / sub if sub else root
    if not directory.is_dir():
        raise ProjectError(f"project: no subdirectory {sub!r} in {root}")
    return str(directory)


class ProjectSource:
    """Where an agent's trials find the project. A remote project (a git URI) is fetched once per
    agent, on first use, into a temporary directory that `close()` removes; every trial of the
    agent runs from that copy, so a sweep is not slowed (or changed mid-way) by a clone per trial.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self.remote = is_remote_uri(uri)
        self._dir: str | None = None
        self._scratch: str | None = None  # the directory that holds a fetched copy
        self._lock = threading.Lock()

    def local_dir(self) -> str:
        with self._lock:
            if self._dir is None:
                self._dir = self._fetch() if self.remote else local_project_dir(self.uri)
            return self._dir

    @property
    def fetched_dir(self) -> str | None:
        """The fetched copy of a remote project, once fetched."""
        return self._dir if self.remote else None

    def _fetch(self) -> str:
        base, _ = _split_subdirectory(self.uri)
        local = _local_path(base)
        if local is not None and not base.startswith("git@") and not os.path.exists(local):
            raise ProjectError(f"project: no such file: {os.path.abspath(local)}")
        # MLflow clones into a temporary directory of its own making, which a failed clone leaves
        # behind: it makes it inside one of ours, removed whatever happens.
        self._scratch = tempfile.mkdtemp(prefix="mlflow-sweeper-project-")
        previous, tempfile.tempdir = tempfile.tempdir, self._scratch
        try:
            return compat.fetch_project_dir(self.uri)
        except compat.CompatError:
            self._remove_scratch()
            raise
        except Exception as exc:  # noqa: BLE001 - git and network errors, in MLflow's words
            self._remove_scratch()
            detail = " ".join(str(exc).split())
            raise ProjectError(f"project: cannot fetch {self.uri}: {detail}") from None
        finally:
            tempfile.tempdir = previous

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def close(self) -> None:
        """Remove a fetched copy (a local project is the user's own directory: never touched)."""
        with self._lock:
            self._remove_scratch()
            if self.remote:
                self._dir = None


def load_project(work_dir: str) -> Any:
    """The parsed MLproject of a local directory (a directory without one is a project whose entry
    points are its scripts, as in MLflow)."""
    try:
        project = compat.load_project(work_dir)
    except compat.CompatError:
        raise
    except Exception as exc:  # noqa: BLE001 - YAML errors, a missing python_env file, ...
        detail = " ".join(str(exc).split())
        raise ProjectError(f"project: cannot load the MLproject of {work_dir}: {detail}") from None
    if getattr(project, "databricks_spark_job_spec", None):
        raise ProjectError(f"project: {work_dir}: databricks_spark_job projects are not supported")
    return project


BUILTIN_BACKENDS = ("local", "databricks", "kubernetes")
BACKEND_GROUP = "mlflow.project_backend"  # the entry point group MLflow loads backend plugins from


def installed_backends() -> list[str]:
    """The backends `mlflow.projects.run` can use here: MLflow's own and installed plugins'."""
    from importlib.metadata import entry_points

    return [*BUILTIN_BACKENDS, *sorted({e.name for e in entry_points(group=BACKEND_GROUP)})]


def check_backend_known(backend: str, tracking_uri: str | None) -> None:
    """The backend exists (MLflow would only say so when the first trial is launched), and
    Databricks gets the Databricks tracking store it requires."""
    known = installed_backends()
    if backend not in known:
        near = difflib.get_close_matches(backend, known, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ProjectError(
            f"backend: unknown backend {backend!r}; {hint}known here: {', '.join(known)} "
            f"(a plugin backend registers under the entry point group {BACKEND_GROUP!r})"
        )
    if backend == "databricks" and tracking_uri and not tracking_uri.startswith("databricks"):
        raise ProjectError(
            f"backend: 'databricks' needs the Databricks tracking store (mlflow_storage: databricks "
            f"or databricks://PROFILE), not {mask(tracking_uri)}"
        )


def check_backend(
    project: Any, backend: str, work_dir: str, environ: Mapping[str, str] | None = None
) -> None:
    """The project's environment suits the backend: docker_env projects are not run locally yet
    (the trials would run outside the image); Kubernetes runs docker_env projects only, with
    docker installed, and Databricks none (as MLflow Projects decides)."""
    docker = bool(getattr(project, "docker_env", None))
    if backend == "local" and docker:
        raise ProjectError(
            f"project: {work_dir}: docker_env projects are not supported yet; build and run the image "
            "yourself and sweep it with 'command' (e.g. command: \"docker run --rm IMAGE python "
            'train.py"), or give the project a python_env or conda_env'
        )
    if backend == "databricks" and docker:
        raise ProjectError(f"project: {work_dir}: docker_env projects cannot run on Databricks (MLflow)")
    if backend == "kubernetes":
        if not docker:
            raise ProjectError(
                f"project: {work_dir}: the kubernetes backend runs docker_env projects only (MLflow); "
                "add a docker_env with an image to the MLproject"
            )
        path = (os.environ if environ is None else environ).get("PATH", "")
        if shutil.which("docker", path=path) is None:
            raise ProjectError(
                "backend: 'kubernetes' builds the project's image with docker, which is not on PATH"
            )


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
            near = _near(name, names)
            hint = f" (did you mean {near!r}?)" if near else ""
            listed = (
                f"its entry points are: {', '.join(names)}"
                if names
                else "it has no MLproject entry points (name a .py or .sh script of the project instead)"
            )
            raise ProjectError(
                f"entry_point: no entry point {name!r} in the project {work_dir}{hint}; {listed}"
            )
    try:
        return project.get_entry_point(name)
    except Exception as exc:  # noqa: BLE001 - MLflow's own refusal, worded by MLflow
        raise ProjectError(f"entry_point: {' '.join(str(exc).split())}") from None


# ---- parameters --------------------------------------------------------------------------------


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
            near = _near(name, declared)
            hint = f"did you mean {near!r}? " if near else ""
            raise ProjectError(
                f"parameters.{name}: entry point {entry_point.name!r} declares no parameter {name!r} "
                f"({hint}it declares: {', '.join(declared)})"
            )


def check_float_values(entry_point: Any, candidates: dict[str, list[Any]]) -> None:
    """A parameter the MLproject declares `float` gets numbers: MLflow documents that it checks
    so, but leaves it to the training code, where every trial would fail alike."""
    declared = declared_parameters(entry_point)
    for name, values in candidates.items():
        parameter = declared.get(name)
        if parameter is None or getattr(parameter, "type", None) != "float":
            continue
        for value in values:
            try:
                float(value_text(value))
            except ValueError:
                raise ProjectError(
                    f"parameters.{name}: entry point {entry_point.name!r} declares {name!r} a float, "
                    f"and {value!r} is not a number"
                ) from None


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


def _local_path(value: str) -> str | None:
    """The local path a `path` value names, or None for a remote URI (MLflow downloads those)."""
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme == "file" and not parsed.netloc:
        return urllib.parse.unquote(parsed.path)
    if not parsed.scheme or len(parsed.scheme) == 1:
        return value
    return None


def _resolved(value: Any, project_dir: str) -> str | None:
    local = _local_path(value_text(value))
    if local is None:
        return None
    return os.path.normpath(os.path.join(project_dir, os.path.expanduser(local)))


def path_parameters(entry_point: Any) -> list[str]:
    return [name for name, p in declared_parameters(entry_point).items() if p.type == "path"]


def check_path_values(entry_point: Any, candidates: Mapping[str, Iterable[Any]], project_dir: str) -> None:
    """Every local value a `path` parameter can take (its swept values, its fixed value, else its
    MLproject default) exists, relative values read against the project directory."""
    declared = declared_parameters(entry_point)
    for name in path_parameters(entry_point):
        values = list(candidates[name]) if name in candidates else [declared[name].default]
        for value in values:
            if value is None:
                continue
            path = _resolved(value, project_dir)
            if path is not None and not os.path.exists(path):
                origin = "its MLproject default" if name not in candidates else "value"
                raise ProjectError(
                    f"parameters.{name}: path parameter {name!r} of entry point {entry_point.name!r}: "
                    f"no such file or directory: {path} ({origin} {value_text(value)!r}; relative "
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


# ---- the environment ---------------------------------------------------------------------------


def _executable(program: str, path: str | None) -> str | None:
    if os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program, path=path)


def check_env_manager(project: Any, env_manager: str, environ: Mapping[str, str] | None = None) -> None:
    """The tool the env manager runs to build the trials' environment is installed: `uv` for uv,
    `pyenv` for virtualenv (MLflow installs the project's Python with it, then runs `python -m
    venv`), and the conda executables for conda. `local` needs nothing: the MLproject's
    python_env or conda_env is then ignored, as by MLflow."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)
    if env_manager == "local":
        return
    if env_manager == "conda":
        from mlflow.projects import env_type

        if getattr(project, "env_type", None) == env_type.PYTHON:
            raise ProjectError(
                "env_manager: MLflow runs a project without a conda_env (or conda.yaml) only with "
                "env_manager uv, virtualenv or local, not conda"
            )
        conda, create = compat.conda_executables()
        for program, why in ((conda, "conda"), (create, "MLFLOW_CONDA_CREATE_ENV_CMD")):
            if _executable(program, path) is None:
                raise ProjectError(
                    f"env_manager: 'conda' needs {program!r} ({why}), which is not installed or not on "
                    "PATH; install conda, set MLFLOW_CONDA_HOME to its directory, or use env_manager: uv"
                )
        return
    tool = ENV_TOOLS.get(env_manager)
    if tool is None:
        return  # an unknown manager is a config error, reported when the config is read
    found = _executable(tool, path)
    if found is None and tool == "pyenv" and os.path.exists("/databricks/.pyenv/bin/pyenv"):
        found = "/databricks/.pyenv/bin/pyenv"
    if found is None:
        how = (
            "install uv (https://docs.astral.sh/uv/)"
            if tool == "uv"
            else "install pyenv (https://github.com/pyenv/pyenv#installation)"
        )
        raise ProjectError(
            f"env_manager: {env_manager!r} needs {tool!r} to build the trials' environment, and it "
            f"is not on PATH; {how}, or use env_manager: local to run trials in this environment"
        )


def trial_env_path(env: Mapping[str, str]) -> dict[str, str]:
    """The trial's environment with `python` meaning the agent's own interpreter.

    Left alone when the user's PATH says otherwise on purpose: an activated environment
    (VIRTUAL_ENV or CONDA_PREFIX set), or a PATH whose `python` already lives next to ours.
    Otherwise (the console script run by its full path, its venv not activated) the interpreter's
    directory goes first on PATH, so the trial finds the packages the agent has."""
    result = dict(env)
    if result.get("VIRTUAL_ENV") or result.get("CONDA_PREFIX"):
        return result
    ours = os.path.dirname(os.path.abspath(sys.executable))
    path = result.get("PATH", "")
    found = shutil.which("python", path=path) if path else None
    if found and os.path.realpath(os.path.dirname(os.path.abspath(found))) == os.path.realpath(ours):
        return result
    result["PATH"] = ours + (os.pathsep + path if path else "")
    return result


# ---- everything, for one config ----------------------------------------------------------------


@dataclass
class CheckedProject:
    """A project that passed every check, ready for the launcher: no second load per trial."""

    source: ProjectSource
    work_dir: str
    project: Any
    entry_point: Any

    def trial_parameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """What the entry point is given: `path` values made absolute against the project."""
        return resolve_path_parameters(self.entry_point, params, self.work_dir)

    def logged_parameters(self, params: Mapping[str, Any]) -> dict[str, str]:
        """What the trial run records: the entry point's full parameter set."""
        return full_parameters(self.entry_point, params)


PYTHONS = ("python", "python3")


def command_program_problem(
    argv: list[str], cwd: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why the command's program (or the script `python` is given) cannot be found, or None.
    Tokens holding a placeholder are not checked: their value differs per trial."""
    env = trial_env_path(os.environ if environ is None else environ)
    program = argv[0]
    if "{" in program:
        return None
    if os.sep in program:
        path = os.path.join(cwd, os.path.expanduser(program))
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"no such executable: {os.path.normpath(path)} (commands run in {cwd})"
    elif shutil.which(program, path=env.get("PATH", "")) is None:
        near = _near(program, PYTHONS) if program not in PYTHONS else None
        hint = f" (did you mean {near!r}?)" if near else ""
        return f"program {program!r} is not on PATH{hint}"
    name = os.path.basename(program)
    if name.startswith("python") and len(argv) > 1:
        script = argv[1]
        if script.endswith(".py") and not script.startswith("-") and "{" not in script:
            path = os.path.normpath(os.path.join(cwd, os.path.expanduser(script)))
            if not os.path.isfile(path):
                return f"no such script: {path} (commands run in the config's directory {cwd})"
    return None


def check_command(config: Any, environ: Mapping[str, str] | None = None) -> None:
    """A `command` config's placeholders name parameters, its `arg_style` is known and its
    program exists: a ConfigError (exit 2) naming the file and the key, before any trial."""
    names = [*config.space.axes, *config.space.fixed]
    problem = command_problem(config.command, names)
    if problem:
        raise ConfigError(str(config.path), "command", problem)
    arg_style = getattr(config, "arg_style", None)
    if arg_style is not None and (problem := check_arg_style(arg_style)):
        raise ConfigError(str(config.path), "arg_style", problem)
    problem = command_program_problem(shlex.split(config.command), str(config.base_dir), environ)
    if problem:
        raise ConfigError(str(config.path), "command", problem)


def _candidates(space: Any) -> dict[str, list[Any]]:
    """Every value a parameter can take that the config lists (fixed ones, grid axes); ranges,
    numbers already, are left out."""
    candidates: dict[str, list[Any]] = {name: [value] for name, value in space.fixed.items()}
    for name, axis in space.axes.items():
        values = axis.grid_values()
        candidates[name] = list(values) if values is not None else []
    return candidates


def check_project(
    config: Any, source: ProjectSource | None = None, optional: Iterable[str] = ()
) -> CheckedProject:
    """Every local check of an `entry_point` config; ProjectError (exit 2) naming the config file.

    `optional`: parameters some trials leave out. Paths and the env manager's tool are checked
    for the local backend only: other backends build their environment and read paths elsewhere.
    """
    source = source or ProjectSource(config.project)
    try:
        work_dir = source.local_dir()
        project = load_project(work_dir)
        entry_point = get_entry_point(project, config.entry_point, work_dir)
        names = [*config.space.axes, *config.space.fixed]
        check_declared(entry_point, names)
        check_float_values(entry_point, _candidates(config.space))
        optional = list(optional)
        check_absent_have_defaults(entry_point, optional)
        check_required_given(entry_point, [n for n in names if n not in optional])
        check_backend_known(config.backend, explicit_tracking_uri(config))
        check_backend(project, config.backend, work_dir)
        if config.backend == "local":
            check_path_values(entry_point, _candidates(config.space), work_dir)
            check_env_manager(project, config.env_manager)
    except ProjectError as exc:
        message = str(exc)
        if source.remote and source.fetched_dir:  # name the project as the user wrote it
            message = message.replace(source.fetched_dir, source.uri.rstrip("/"))
        source.close()
        raise ProjectError(f"{config.path}: {message}") from None
    return CheckedProject(source, work_dir, project, entry_point)


def preflight(config: Any, source: ProjectSource | None = None) -> CheckedProject | None:
    """All local checks of one config, before either storage is touched. Returns the checked
    project of an `entry_point` config (None for `command`)."""
    if config.command is not None:
        check_command(config)
        return None
    conditional = getattr(config.space, "conditional_names", lambda: [])()
    return check_project(config, source, optional=conditional)


def preflight_all(configs: Iterable[Any]) -> dict[int, CheckedProject | None]:
    """Every config checked before any sweep starts (one bad file stops the agent before it
    writes anything); the checked projects keyed by `id(config)`. On a failure, the projects
    already fetched are released before the error propagates."""
    checked: dict[int, CheckedProject | None] = {}
    try:
        for config in configs:
            checked[id(config)] = preflight(config)
    except BaseException:
        release(checked.values())
        raise
    return checked


def release(checked: Iterable[CheckedProject | None]) -> None:
    """Remove every fetched project copy (once per agent, when it ends)."""
    for project in checked:
        if project is not None:
            project.source.close()
