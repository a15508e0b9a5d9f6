"""Which MLflow storage a sweep uses, decided once and recorded in its Optuna study.

With neither `mlflow_storage` nor `MLFLOW_TRACKING_URI`, MLflow's default store follows the
working directory, while the Optuna storage follows the config file. The first agent records the
store it resolved (absolute paths, no password) as a study user attr; later agents, `status`,
`delete` and `report` without an explicit store use the recorded one, wherever they start.
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from typing import Any

from .secrets import redact

TRACKING_URI_ATTR = "mlflow_tracking_uri"
RECORD_WAIT_SECONDS = 60.0  # how long a joining agent waits for the creator's record
_PASSWORD = re.compile(r"(://[^:/@]*):[^@/]*@")


# The stores this process made MLflow's current, each with what MLFLOW_TRACKING_URI held for the
# user before: MLflow's `set_tracking_uri` sets that variable too.
_SET_BY_SWEEPER: dict[str, str | None] = {}


def make_current(uri: str) -> None:
    """Make `uri` MLflow's current tracking store (MLflow Projects creates runs there), keeping
    what MLFLOW_TRACKING_URI held for the user: MLflow's `set_tracking_uri` sets it too."""
    import mlflow

    user = user_tracking_uri()
    mlflow.set_tracking_uri(uri)
    _SET_BY_SWEEPER[uri] = user


def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user (or `mlflow run`, for its own run) set it, not as MLflow
    set it when this process opened a sweep's store; a relative SQLite path in it, under
    `mlflow run`, as meant from where that command was typed (MLflow made its own run there)."""
    current = os.environ.get("MLFLOW_TRACKING_URI") or None
    user = _SET_BY_SWEEPER.get(current, current) if current is not None else None
    return _from_where_typed(user) if user else user


def _from_where_typed(uri: str) -> str:
    from .invocation import mlflow_run_directory, under_mlflow_run

    parsed = urllib.parse.urlparse(uri)
    head = f"{parsed.scheme}:///"
    if not (under_mlflow_run() and parsed.scheme.startswith("sqlite") and uri.startswith(head)):
        return uri
    path, sep, query = uri[len(head) :].partition("?")
    typed_in = mlflow_run_directory()
    if not path or path.startswith(":memory:") or os.path.isabs(path) or typed_in is None:
        return uri
    return f"{head}{typed_in / path}{sep}{query}"


def _set_by_mlflow_run() -> bool:
    from .invocation import tracking_uri_from_mlflow_run

    return tracking_uri_from_mlflow_run()


def explicit_tracking_uri(config: Any) -> str | None:
    """The store the user named: the config's `mlflow_storage`, else MLFLOW_TRACKING_URI (not
    when `mlflow run` set it: that is its default store, named by nobody)."""
    return config.mlflow_storage or (None if _set_by_mlflow_run() else user_tracking_uri())


# MLflow's own default store (`mlflow.store.tracking.DEFAULT_TRACKING_URI`), made absolute in the
# working directory as MLflow does. Named here rather than asked of MLflow: MLflow's answer changes
# once a store has been opened (it is then that store), and is a `./mlruns` file store where one
# holds data, which several agents cannot share.
DEFAULT_STORE_FILE = "mlflow.db"


def default_tracking_uri() -> str:
    """Under `mlflow run` with no store named, the one it made its own run in (where the command
    was typed: the entry point runs in this project's folder)."""
    from_run = user_tracking_uri() if _set_by_mlflow_run() else None
    return from_run or f"sqlite:///{os.path.abspath(DEFAULT_STORE_FILE)}"


def fit_to_record(uri: str) -> str | None:
    """The URI as stored for other agents: local paths absolute, the password dropped (an agent
    that needs one is given the store explicitly). None when it holds another secret (a password
    in its query, a value from `${VAR}`): masked, it would name a store that does not exist, so
    it is not recorded, and an agent without a store named uses its own default."""
    uri = _PASSWORD.sub(r"\1@", uri)
    if redact(uri) != uri:
        return None
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme.startswith("sqlite") and uri.startswith(f"{parsed.scheme}:///"):
        rest = uri[len(f"{parsed.scheme}:///") :]
        path, sep, query = rest.partition("?")
        if path and path != ":memory:" and not os.path.isabs(path):
            return f"{parsed.scheme}:///{os.path.abspath(path)}{sep}{query}"
    return uri


def recorded_tracking_uri(study: Any) -> str | None:
    """The store recorded in a found sweep's study (None for sweeps recorded before it existed)."""
    attrs = study.store.get_study_user_attrs(study.study_id)
    return attrs.get(TRACKING_URI_ATTR) or None


def record_tracking_uri(study: Any, uri: str) -> None:
    """Record the sweep's store once: the first agent's answer stays."""
    recordable = fit_to_record(uri)
    if recordable is not None and recorded_tracking_uri(study) is None:
        study.store.set_study_user_attr(study.study_id, TRACKING_URI_ATTR, recordable)


def sweep_tracking_uri(config: Any, study: Any | None) -> str:
    """The store of a sweep: explicit, else recorded in its study (when found), else MLflow's default."""
    explicit = explicit_tracking_uri(config)
    if explicit:
        return explicit
    recorded = recorded_tracking_uri(study) if study is not None else None
    return recorded or default_tracking_uri()


def store_not_recorded(config: Any, study: Any | None) -> str | None:
    """What to say when a command found none of a sweep's runs in the store the user named, and
    its agents recorded another: where they are (None when the named store is the recorded one)."""
    explicit = explicit_tracking_uri(config)
    recorded = recorded_tracking_uri(study) if explicit and study is not None else None
    given = fit_to_record(explicit) if recorded else None
    if given is None or given.rstrip("/") == recorded.rstrip("/"):
        return None
    named = "mlflow_storage" if config.mlflow_storage else "MLFLOW_TRACKING_URI"
    return (
        f"{config.identity}: its agents recorded its runs in {recorded}; {named} names "
        f"{given}, which does not hold them"
    )


def first_records(uri: str) -> dict[str, str]:
    """What the agent creating a sweep's study writes with it, before anything else: its store,
    so that an agent without a store named that joins at that moment waits for it."""
    recordable = fit_to_record(uri)
    return {} if recordable is None else {TRACKING_URI_ATTR: recordable}


def agreed_tracking_uri(study: Any, created: bool, own_default: str) -> str:
    """No store named: the sweep's store, as the agent that created its study recorded it with
    the study (`first_records`). This agent's own default when it has just created the study;
    else the record of the agent that did (a moment ago, perhaps from another directory, so it
    waits for that record)."""
    if created:
        return own_default
    return await_recorded_tracking_uri(study) or own_default


def await_recorded_tracking_uri(study: Any, seconds: float = RECORD_WAIT_SECONDS) -> str | None:
    """The store the sweep's creator records right after creating its study. None at once for a
    sweep recorded before stores were (it has a parent run and no record), or when the creator
    died before recording it."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        recorded = recorded_tracking_uri(study)
        if recorded or study.parent_run_id() or time.monotonic() > deadline:
            return recorded
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
