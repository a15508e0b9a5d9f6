"""Opening the two storages safely: URL checks, race-free creation, transient-error retries.

Optuna URLs: any RDB URL (`sqlite:///`, `postgresql://`, `mysql+pymysql://`), a journal file
(`journal:///abs/path.log` or `journal://relative/path.log`) and Redis through Optuna's journal
Redis backend (`redis://host:port/db`, `rediss://...`). MLflow URIs: SQLite, the same database
servers, a tracking server (`http(s)://`) or Databricks.

- `urls`: the one URL parser; `kinds`: one class per storage kind, in tables keyed by scheme;
- `retry`: what counts as transient and the backoff; `sqlite`: SQLite tuned for many agents;
- `engines`: what is added to a shared engine, added once;
- `opening`: opening either storage race-free, with one clear error.
"""

from .kinds import (
    MLFLOW_KINDS,
    MLFLOW_SCHEMES,
    OPTUNA_KINDS,
    RDB_SCHEMES,
    StorageKind,
    check_mlflow_url,
    check_optuna_url,
    exists,
    is_remote_tracking,
    mlflow_kind,
    optuna_kind,
    probe_mlflow_storage,
    probe_optuna_storage,
    resolve,
)
from .opening import local_lock, open_mlflow_tracking, open_optuna_storage
from .retry import PROBE_SECONDS, RACE_PATTERNS, TRANSIENT_PATTERNS, is_transient, retry
from .sqlite import sqlite_file, tune_sqlite_engine, with_sqlite_timeout
from .urls import StorageURL, mask, parse

__all__ = [
    "MLFLOW_KINDS",
    "MLFLOW_SCHEMES",
    "OPTUNA_KINDS",
    "PROBE_SECONDS",
    "RACE_PATTERNS",
    "RDB_SCHEMES",
    "TRANSIENT_PATTERNS",
    "StorageKind",
    "StorageURL",
    "check_mlflow_url",
    "check_optuna_url",
    "exists",
    "is_remote_tracking",
    "is_transient",
    "local_lock",
    "mask",
    "mlflow_kind",
    "open_mlflow_tracking",
    "open_optuna_storage",
    "optuna_kind",
    "parse",
    "probe_mlflow_storage",
    "probe_optuna_storage",
    "resolve",
    "retry",
    "sqlite_file",
    "tune_sqlite_engine",
    "with_sqlite_timeout",
]
