"""Where and in what the trials run: the backend exists and suits the project, the env manager's
tool is installed, and `python` in a trial is the agent's own interpreter unless the user
activated another environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from .. import compat
from ..errors import ProjectError
from ..hints import near_name
from ..storages.urls import mask

ENV_TOOLS = {"uv": "uv", "virtualenv": "pyenv"}  # what MLflow's env managers run to build an env
BUILTIN_BACKENDS = ("local", "databricks", "kubernetes")
KUBERNETES_PACKAGES = ("kubernetes", "docker")  # what MLflow's kubernetes backend imports
BACKEND_GROUP = "mlflow.project_backend"  # the entry point group MLflow loads backend plugins from


# ---- the backend -------------------------------------------------------------------------------


def installed_backends() -> list[str]:
    """The backends `mlflow.projects.run` can use here: MLflow's own and installed plugins'."""
    return [*BUILTIN_BACKENDS, *sorted({e.name for e in entry_points(group=BACKEND_GROUP)})]


def check_backend_known(backend: str, tracking_uri: str | None) -> None:
    """The backend exists (MLflow would only say so when the first trial is launched), and
    Databricks gets the Databricks tracking store it requires."""
    known = installed_backends()
    if backend not in known:
        near = near_name(backend, known)
        hint = f"did you mean {near!r}? " if near else ""
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
        missing = [name for name in KUBERNETES_PACKAGES if not _installed(name)]
        if missing:
            raise ProjectError(
                f"backend: MLflow's kubernetes backend needs the Python package(s) {', '.join(missing)}, "
                f"not installed here: pip install {' '.join(missing)}"
            )
        path = (os.environ if environ is None else environ).get("PATH", "")
        if shutil.which("docker", path=path) is None:
            raise ProjectError(
                "backend: 'kubernetes' builds the project's image with docker, which is not on PATH"
            )


def _installed(package: str) -> bool:
    """An importable package, not a bare folder of that name on sys.path (a namespace package)."""
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin not in (None, "namespace")


# ---- the env manager ---------------------------------------------------------------------------


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
        if compat.has_python_env(project):
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


# ---- the trial's run-time environment ----------------------------------------------------------


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
