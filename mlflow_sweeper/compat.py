"""Every use of a private MLflow or Optuna API, in one place.

An upgrade of either library that moves or drops one of these breaks this module only: each
function has a public fallback or raises `CompatError` with a clear message, and
`tests/test_compat.py` checks that every private name still exists in the installed versions.

MLflow's and Optuna's modules are imported inside the functions: a name gone from an installed
version becomes a `CompatError` where it is used, and the quick commands, which import this
module, do not pay for importing either library.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from pathlib import Path
from typing import Any

from .errors import SweeperError

log = logging.getLogger(__name__)

# (module, attribute path) of every private name used below; tests/test_compat.py checks each.
PRIVATE_NAMES: list[tuple[str, str]] = [
    ("optuna.storages", "RDBStorage._create_new_trial"),
    ("optuna.study", "Study._thread_local"),
    ("optuna.study", "Study._storage"),
    ("optuna.search_space.group_decomposed", "_GroupDecomposedSearchSpace"),
    ("optuna.samplers", "GPSampler._gprs_cache_list"),
    ("optuna.samplers", "GPSampler._constraints_gprs_cache_list"),
    ("mlflow.store.tracking.sqlalchemy_store", "SqlAlchemyStore._hard_delete_run"),
    ("mlflow.tracking", "MlflowClient._tracking_client"),
    ("mlflow.utils.environment", "_PythonEnv"),
    ("mlflow.utils.virtualenv", "_create_virtualenv"),
    ("mlflow.utils.virtualenv", "_get_mlflow_virtualenv_root"),
    ("mlflow.utils.virtualenv", "_get_virtualenv_name"),
    ("mlflow.projects.utils", "fetch_and_validate_project"),
    ("mlflow.projects.utils", "load_project"),
    ("mlflow.utils.conda", "get_or_create_conda_env"),
    ("mlflow.utils.git_utils", "get_git_commit"),
    ("mlflow.projects.utils", "_fetch_project"),
    ("mlflow.projects._project_spec", "Project._entry_points"),
    ("mlflow.utils.conda", "get_conda_bin_executable"),
    ("mlflow.utils.conda", "_get_conda_executable_for_create_env"),
    ("sqlalchemy.pool", "QueuePool._max_overflow"),
    ("optuna.trial", "FrozenTrial._trial_id"),
    ("optuna.study", "Study._get_trials"),
    ("mlflow.projects", "env_type"),
    ("mlflow.utils", "env_manager"),
    ("mlflow.utils.env_manager", "LOCAL"),
    ("mlflow.utils.env_manager", "VIRTUALENV"),
    ("mlflow.utils.env_manager", "UV"),
    ("mlflow.utils", "mlflow_tags"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_SOURCE_NAME"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_SOURCE_TYPE"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_PROJECT_ENTRY_POINT"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_PROJECT_BACKEND"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_PROJECT_ENV"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_GIT_COMMIT"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_PARENT_RUN_ID"),
    ("mlflow.utils.mlflow_tags", "MLFLOW_RUN_NAME"),
    ("mlflow.store.artifact.artifact_repository_registry", "get_artifact_repository"),
    ("mlflow.utils.uri", "is_local_uri"),
    ("mlflow.utils.file_utils", "local_file_uri_to_path"),
    ("optuna.storages", "GrpcStorageProxy._setup"),
    ("optuna.storages._grpc.client", "GrpcClientCache"),
    ("optuna.storages._grpc.auto_generated.api_pb2_grpc", "StorageServiceStub"),
    ("optuna.storages._grpc.auto_generated.api_pb2_grpc", "add_StorageServiceServicer_to_server"),
    ("optuna.storages._grpc.servicer", "OptunaStorageProxyService"),
    ("mlflow.utils.validation", "_validate_model_name"),
    ("mlflow.utils.validation", "_validate_model_alias_name"),
]


class CompatError(SweeperError):
    """An installed MLflow or Optuna lacks an API this package relies on."""


def _missing(what: str, exc: BaseException) -> CompatError:
    import mlflow  # only when a name is missing: quick commands never import either library here
    import optuna

    return CompatError(
        f"{what} is not available in the installed versions (mlflow {mlflow.__version__}, "
        f"optuna {optuna.__version__}): {exc}. Install versions this package supports "
        "(see pyproject.toml)."
    )


# ---- Optuna --------------------------------------------------------------------------------------


def create_trial_numbered(storage: Any, study_id: int, template: Any = None) -> tuple[int, int]:
    """Create a trial; return its id and number, in one round trip where the storage allows.

    RDBStorage's public `create_new_trial` drops the number it computed in the same transaction;
    its private `_create_new_trial` returns the whole frozen trial.
    """
    import optuna  # heavy: kept off the import of this module, which quick commands load

    private = getattr(storage, "_create_new_trial", None)
    if isinstance(storage, optuna.storages.RDBStorage) and private is not None:
        frozen = private(study_id, template)
        return trial_id(frozen), frozen.number
    numbered = getattr(storage, "create_trial_numbered", None)  # ours over gRPC (grpc_storage_proxy)
    if numbered is not None:
        return numbered(study_id, template)
    created = storage.create_new_trial(study_id, template_trial=template)
    return created, storage.get_trial_number_from_id(created)


def trial_id(trial: Any) -> int:
    """The storage's id of a trial, which every storage call takes; FrozenTrial keeps it private."""
    try:
        return trial._trial_id
    except AttributeError as exc:
        raise _missing("optuna.trial.FrozenTrial._trial_id", exc) from None


def limit_pool_overflow(engine: Any, overflow: int) -> None:
    """Lower the overflow of an engine's QueuePool once it is built.

    Optuna's RDBStorage holds two connections at once while it checks its schema on opening,
    then one per operation: an agent may open it with one overflow connection and keep none.
    Other pools (or a SQLAlchemy without the attribute) are left as they are.
    """
    pool = getattr(engine, "pool", None)
    if pool is not None and isinstance(getattr(pool, "_max_overflow", None), int):
        pool._max_overflow = overflow


def study_storage(study: Any) -> Any:
    """The (caching) storage a Study talks through."""
    return study._storage


def forget_cached_trials(study: Any) -> None:
    """Make the next sampler call re-read the trial history, as `Study.ask` does across threads."""
    local = getattr(study, "_thread_local", None)
    if local is not None and hasattr(local, "cached_all_trials"):
        local.cached_all_trials = None


@functools.cache
def _search_space_caches() -> tuple[type, ...]:
    """The classes in which Optuna's samplers cache the study's search space incrementally."""
    from optuna.search_space import IntersectionSearchSpace

    try:
        from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace
    except ImportError:  # only the public one then: still shared, the other recomputed
        return (IntersectionSearchSpace,)
    return (IntersectionSearchSpace, _GroupDecomposedSearchSpace)


# What samplers learned from the history so far, by sampler class (besides the search-space
# caches, found by type): GP's fitted kernels, the warm start of its next fit.
LEARNED_STATE = {"GPSampler": ("_gprs_cache_list", "_constraints_gprs_cache_list")}


def carry_learned_state(previous: Any, sampler: Any) -> None:
    """Hand what the previous sampler of the study learned to the next one.

    Optuna's samplers read only the trials added since their last call into their search-space
    caches, and GP warm-starts each fit from the last one. The sweeper makes one sampler per slot
    (its seed is the slot's): without this, each new one would rescan the whole history and fit
    from scratch, a cost per trial growing with the trials. The two must be of one study, and
    used one at a time. A name missing from an installed Optuna is not carried (it is recomputed).
    """
    if previous is None or type(previous) is not type(sampler):
        return
    kinds = _search_space_caches()
    carried = LEARNED_STATE.get(type(sampler).__name__, ())
    for name, value in vars(previous).items():
        if isinstance(value, kinds) or name in carried:
            setattr(sampler, name, value)


def cached_trials(study: Any) -> list:
    """Every trial of `study` as its samplers read them: the Study's private per-ask cache, which
    the sampler's own reads share; the public (uncached) read where it is gone."""
    private = getattr(study, "_get_trials", None)
    if callable(private):
        return private(deepcopy=False, use_cache=True)
    return study.get_trials(deepcopy=False)


class _StudyReadingAlso:
    """A study whose reads of finished trials also return `extra` (trials that are not stored).

    Optuna's samplers read the history through the private `Study._get_trials(deepcopy, states,
    use_cache)`; a read of finished trials only (no RUNNING state asked) gets `extra` too. Every
    other attribute is the study's own."""

    def __init__(self, study: Any, extra: list) -> None:
        self._study = study
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list:
        from optuna.trial import TrialState

        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        if states is None or TrialState.RUNNING in states or TrialState.COMPLETE not in states:
            return trials
        return [*trials, *self._extra]


def study_with_extra_finished(study: Any, extra: list) -> Any:
    """`study` as a sampler reads it, with the finished trials `extra` added to its history.

    Without the private read to hook (an Optuna that renamed it), the study is returned as it
    is: the sampler then sees the stored history only, as Optuna's own would."""
    if not extra or not callable(getattr(study, "_get_trials", None)):
        return study
    return _StudyReadingAlso(study, extra)


# ---- MLflow tracking -----------------------------------------------------------------------------


def tracking_store(client: Any) -> Any | None:
    """The store behind an MlflowClient (a SqlAlchemyStore, a REST store, ...), or None."""
    return getattr(getattr(client, "_tracking_client", None), "store", None)


def sql_engine(client: Any) -> Any | None:
    """The SQLAlchemy engine of a client's database store; None for servers."""
    return getattr(tracking_store(client), "engine", None)


def can_hard_delete(client: Any) -> bool:
    return hasattr(tracking_store(client), "_hard_delete_run")


def hard_delete_run(client: Any, run_id: str) -> None:
    """Permanently delete a run (what `mlflow gc` does), on a database store only."""
    store = tracking_store(client)
    if not hasattr(store, "_hard_delete_run"):
        raise CompatError("permanent deletion needs a database tracking store, not a server")
    store._hard_delete_run(run_id)


@functools.cache
def mlflow_tags() -> Any:
    """MLflow's system tag names (`MLFLOW_PARENT_RUN_ID`, `MLFLOW_RUN_NAME`, `MLFLOW_SOURCE_NAME`,
    ...): the module `mlflow.utils.mlflow_tags`, whose names are attributes."""
    try:
        from mlflow.utils import mlflow_tags as tags
    except ImportError as exc:
        raise _missing("mlflow.utils.mlflow_tags", exc) from None
    return tags


def delete_artifacts(artifact_uri: str) -> None:
    """Delete every artifact under a URI, through the artifact repository MLflow picks for it."""
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    except ImportError as exc:
        raise _missing("MLflow's get_artifact_repository", exc) from None
    get_artifact_repository(artifact_uri).delete_artifacts()


def local_artifact_path(artifact_uri: str) -> str | None:
    """The local directory of an artifact URI of a local artifact store, or None for a remote one."""
    try:
        from mlflow.utils.file_utils import local_file_uri_to_path
        from mlflow.utils.uri import is_local_uri
    except ImportError as exc:
        raise _missing("MLflow's is_local_uri and local_file_uri_to_path", exc) from None
    if not is_local_uri(artifact_uri):
        return None
    return local_file_uri_to_path(artifact_uri)


def registry_name_problem(kind: str, value: str) -> str | None:
    """Why the Model Registry would refuse `value` as a model name (`kind` "name") or an alias
    ("alias"), or None; checked when the config loads, so a sweep never fails at its close. The
    registry also reserves the aliases `latest` and `v<number>` (its own version references)."""
    import re

    if kind == "alias" and (value.lower() == "latest" or re.fullmatch(r"[vV]\d+", value)):
        return f"'{value}' is reserved by the Model Registry (latest, v1, v2, ... name versions)"
    if kind == "name" and ("/" in value or ":" in value):  # refused by newer registries: by all, here
        return f"Invalid model name '{value}'. Names cannot contain '/' or ':'."
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.utils import validation
    except ImportError:  # pragma: no cover - the registry then checks it at the close
        return None
    check = getattr(
        validation, "_validate_model_name" if kind == "name" else "_validate_model_alias_name", None
    )
    if check is None:  # a version without it: the registry checks it at the close
        return None
    try:
        check(value)
    except MlflowException as exc:
        return exc.message
    return None


# ---- MLflow Projects -----------------------------------------------------------------------------


def fetch_project(uri: str, entry_point: str | None) -> str:
    """Fetch a project (a git URI is cloned) and return its local directory."""
    try:
        from mlflow.projects.utils import fetch_and_validate_project
    except ImportError as exc:
        raise _missing("mlflow.projects.utils.fetch_and_validate_project", exc) from None
    return fetch_and_validate_project(uri, None, entry_point, {})


def load_project(work_dir: str) -> Any:
    """The parsed MLproject of a local project directory (a default one when there is none)."""
    try:
        from mlflow.projects.utils import load_project as _load
    except ImportError as exc:
        raise _missing("mlflow.projects.utils.load_project", exc) from None
    return _load(work_dir)


def git_commit(path: str) -> str | None:
    try:
        from mlflow.utils.git_utils import get_git_commit
    except ImportError:
        return None
    return get_git_commit(path)


@functools.cache
def env_managers() -> Any:
    """MLflow's env manager names (`LOCAL`, `VIRTUALENV`, `UV`, `CONDA`): the module
    `mlflow.utils.env_manager`, whose names are attributes."""
    try:
        from mlflow.utils import env_manager
    except ImportError as exc:
        raise _missing("mlflow.utils.env_manager", exc) from None
    return env_manager


def has_python_env(project: Any) -> bool:
    """Whether a loaded MLproject's environment is a python_env (not a conda_env or docker_env)."""
    try:
        from mlflow.projects import env_type
    except ImportError as exc:
        raise _missing("mlflow.projects.env_type", exc) from None
    return getattr(project, "env_type", None) == env_type.PYTHON


def virtualenv_activate_command(project: Any, work_dir: str, env_manager: str) -> str:
    """Create (once) the virtualenv or uv environment MLflow's local backend would use; return
    the command that activates it."""
    try:
        from mlflow.projects import env_type
        from mlflow.utils.environment import _PythonEnv
        from mlflow.utils.virtualenv import (
            _create_virtualenv,
            _get_mlflow_virtualenv_root,
            _get_virtualenv_name,
        )
    except ImportError as exc:
        raise _missing("MLflow's virtualenv support", exc) from None
    if project.env_type == env_type.CONDA:
        python_env = _PythonEnv.from_conda_yaml(project.env_config_path)
    elif project.env_config_path:
        python_env = _PythonEnv.from_yaml(project.env_config_path)
    else:
        python_env = _PythonEnv()
    root = Path(work_dir)
    env_dir = Path(_get_mlflow_virtualenv_root()) / _get_virtualenv_name(python_env, root)
    return _create_virtualenv(
        local_model_path=root, python_env=python_env, env_dir=env_dir, env_manager=env_manager
    )


def conda_activate_command(env_config_path: str | None) -> list[str]:
    try:
        from mlflow.utils.conda import get_or_create_conda_env
    except ImportError as exc:
        raise _missing("mlflow.utils.conda.get_or_create_conda_env", exc) from None
    return get_or_create_conda_env(env_config_path).get_activate_command()


def fetch_project_dir(uri: str) -> str:
    """Fetch a project (a git URI is cloned into a new temporary directory) without validating an
    entry point, so that the caller can check the entry point with its own messages."""
    try:
        from mlflow.projects.utils import _fetch_project
    except ImportError:
        # The validating path, given an entry point that always resolves (a script name).
        return fetch_project(uri, "__mlflow_sweeper_probe__.py")
    return _fetch_project(uri)


def entry_point_names(project: Any) -> list[str]:
    """The entry points an MLproject declares, in file order (empty for a directory without one)."""
    return list(getattr(project, "_entry_points", None) or {})


def conda_executables() -> tuple[str, str]:
    """The conda executable MLflow runs, and the one it creates environments with
    (MLFLOW_CONDA_HOME, CONDA_EXE and MLFLOW_CONDA_CREATE_ENV_CMD taken into account)."""
    try:
        from mlflow.utils.conda import _get_conda_executable_for_create_env, get_conda_bin_executable
    except ImportError:
        home = os.environ.get("MLFLOW_CONDA_HOME")
        exe = os.environ.get("CONDA_EXE")

        def find(name: str) -> str:
            if home:
                return os.path.join(home, "bin", name)
            return os.path.join(os.path.dirname(exe), name) if exe else name

        return find("conda"), find(os.environ.get("MLFLOW_CONDA_CREATE_ENV_CMD", "conda"))
    return get_conda_bin_executable("conda"), _get_conda_executable_for_create_env()


# ---- Optuna's gRPC proxy over our own channel and server (a token, TLS) ---------------------------


# One extra call of our proxy: create a trial and answer its id and its number. Optuna's protocol
# answers the id only, and reading the trial back for its number costs the proxy a read of the
# whole trial (six queries) on every claim.
NUMBERED_SERVICE = "mlflow_sweeper.Proxy"
NUMBERED_METHOD = "CreateTrialNumbered"


def _pack_id_and_number(pair: tuple[int, int]) -> bytes:
    return struct.pack("<qq", *pair)


def _unpack_id_and_number(data: bytes) -> tuple[int, int]:
    trial_id, number = struct.unpack("<qq", data)
    return trial_id, number


def grpc_storage_proxy(host: str, port: int, make_channel: Any) -> Any:
    """Optuna's `GrpcStorageProxy` whose channel is `make_channel()` (one that sends a token or
    speaks TLS) instead of its own insecure one, with `create_trial_numbered`: our proxy's one
    call, or Optuna's two where the proxy is Optuna's own (or an older one of ours)."""
    try:
        import grpc
        from optuna.storages import GrpcStorageProxy
        from optuna.storages._grpc import servicer
        from optuna.storages._grpc.auto_generated import api_pb2
        from optuna.storages._grpc.auto_generated.api_pb2_grpc import StorageServiceStub
        from optuna.storages._grpc.client import GrpcClientCache
    except ImportError as exc:
        raise _missing("Optuna's gRPC storage client", exc) from None

    class OnOwnChannel(GrpcStorageProxy):
        def _setup(self) -> None:
            self._channel = make_channel()
            self._stub = StorageServiceStub(self._channel)
            self._cache = GrpcClientCache(self._stub)
            self._create_numbered = self._channel.unary_unary(
                f"/{NUMBERED_SERVICE}/{NUMBERED_METHOD}",
                request_serializer=api_pb2.CreateNewTrialRequest.SerializeToString,
                response_deserializer=_unpack_id_and_number,
            )
            self._numbered_served = True  # until the proxy says it does not know the call

        def create_trial_numbered(self, study_id: int, template: Any = None) -> tuple[int, int]:
            if self._numbered_served:
                request = api_pb2.CreateNewTrialRequest(
                    study_id=study_id, template_trial_is_none=template is None
                )
                if template is not None:
                    request.template_trial.CopyFrom(servicer._to_proto_trial(template))
                try:
                    return self._create_numbered(request)
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        raise KeyError(exc.details()) from exc
                    if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # unknown call: nothing was created
                        raise
                    self._numbered_served = False
            created = self.create_new_trial(study_id, template_trial=template)
            return created, self.get_trial_number_from_id(created)

    return OnOwnChannel(host=host, port=port)


def grpc_proxy_server(storage: Any, thread_pool: Any, interceptors: list) -> Any:
    """A gRPC server (not started, no port yet) serving Optuna's storage proxy for `storage`
    behind `interceptors`, and our numbered trial creation; Optuna's own `run_grpc_proxy_server`
    takes neither."""
    import grpc

    try:
        from optuna.storages._grpc.auto_generated import api_pb2
        from optuna.storages._grpc.auto_generated.api_pb2_grpc import add_StorageServiceServicer_to_server
        from optuna.storages._grpc.servicer import OptunaStorageProxyService, _from_proto_trial
    except ImportError as exc:
        raise _missing("Optuna's gRPC storage proxy server", exc) from None

    def create_numbered(request: Any, context: Any) -> tuple[int, int]:
        template = None if request.template_trial_is_none else _from_proto_trial(request.template_trial)
        try:
            trial_id = storage.create_new_trial(request.study_id, template)
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return trial_id, _trial_number(storage, trial_id)

    numbered = grpc.unary_unary_rpc_method_handler(
        create_numbered,
        request_deserializer=api_pb2.CreateNewTrialRequest.FromString,
        response_serializer=_pack_id_and_number,
    )
    server = grpc.server(thread_pool, interceptors=interceptors)
    add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(NUMBERED_SERVICE, {NUMBERED_METHOD: numbered}),)
    )
    return server


def _trial_number(storage: Any, trial_id: int) -> int:
    """A trial's number: from the trial cache of Optuna's `_CachedStorage`, which keeps the
    numbers of the trials it created (a number never changes), else read from the storage."""
    known = getattr(storage, "_trial_id_to_study_id_and_number", {}).get(trial_id)
    return known[1] if known is not None else storage.get_trial_number_from_id(trial_id)


DATABASE_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")


def run_state_in_database(tracking_uri: str, run_id: str) -> tuple[str, bool] | None:
    """A run's status, and whether it is deleted, read straight from an MLflow database store (its
    `runs` table), so that `status` need not import MLflow, which takes seconds. None when the
    store is not a database, the run is not there or the schema differs: the caller then asks
    MLflow itself."""
    if not tracking_uri.startswith(DATABASE_SCHEMES):
        return None
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(tracking_uri, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                row = connection.execute(
                    sqlalchemy.text("SELECT status, lifecycle_stage FROM runs WHERE run_uuid = :run_id"),
                    {"run_id": run_id},
                ).first()
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any problem: MLflow answers instead
        log.debug("could not read run %s from %s directly: %s", run_id, tracking_uri, exc)
        return None
    return (str(row[0]), row[1] == "deleted") if row is not None and row[0] else None
