"""Storage kinds as tables keyed by URL scheme, one for each storage a sweep uses.

A kind knows everything that differs between storages: how a relative path in its URL is
resolved, what a valid URL looks like, how to see that it answers without writing, how to open
it, and whether a file-backed store exists without creating it. Adding a storage is one class
and one line in `OPTUNA_KINDS` or `MLFLOW_KINDS`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

from .grpc import check_grpc_url, open_grpc_storage, probe_grpc
from .pools import Pool, engine_kwargs
from .retry import probe_until
from .urls import StorageURL, parse, with_path

OPTUNA_EXAMPLES = (
    "sqlite:///FILE, postgresql://..., mysql+pymysql://..., journal:///ABS/PATH.log (or "
    "journal://REL/PATH.log), redis://HOST:PORT/DB or grpc://HOST:PORT (a `mlflow-sweeper proxy`)"
)
MLFLOW_EXAMPLES = (
    "sqlite:///FILE, postgresql://..., mysql+pymysql://... or http(s)://HOST:PORT of a tracking server"
)
CONNECT_TIMEOUT = {"postgresql": 5, "postgres": 5, "mysql": 5, "mariadb": 5}


class StorageKind:
    """One kind of storage. The defaults fit a database server reached by URL."""

    what = "storage"  # how messages name it
    remote = False  # reached over the network through an API (a tracking server), not a database

    def resolve(self, url: StorageURL, base_dir: Path) -> str:
        """The URL with a relative file path made absolute against `base_dir`."""
        return url.text

    def check(self, url: StorageURL) -> str | None:
        """What is wrong with the URL, or None; never connects."""
        return None if url.has_authority else f"{url.text!r} is not a URL (e.g. sqlite:///optuna.db)"

    def probe(self, url: StorageURL) -> None:
        """Raise StorageError unless the storage answers; writes nothing."""

    def open(self, url: StorageURL, pool: Pool | None = None) -> Any:
        """Open the storage; `pool` sizes a database engine's connection pool where there is one."""
        raise NotImplementedError

    def exists(self, url: StorageURL) -> bool:
        """False only when the store surely holds nothing (a missing file); never creates it."""
        return True


class FileBacked(StorageKind):
    """A store in a local file: relative paths follow the config file, not the working directory."""

    def resolve(self, url: StorageURL, base_dir: Path) -> str:
        if url.path is None or os.path.isabs(url.path):
            return url.text
        return with_path(url, str((base_dir / url.path).resolve()))

    def exists(self, url: StorageURL) -> bool:
        return url.file is None or url.file.exists()


class SQLiteFile(FileBacked):
    """A SQLite database file. `sqlite://name.db` (a host, no path), `sqlite:///` and in-memory
    databases name no file that agents could share: refused before anything is written."""

    def check(self, url: StorageURL) -> str | None:
        path = url.path or ""
        if path.strip("/") and not path.endswith("/") and not os.path.isdir(path):
            return None
        return (
            f"{url.text!r} names no SQLite file; use sqlite:///relative/path.db (three slashes) "
            "or sqlite:////absolute/path.db"
        )

    def probe(self, url: StorageURL) -> None:
        from ..errors import StorageError
        from .sqlite import unusable_file, without_timeout
        from .urls import mask

        problem = unusable_file(url.file) if url.file is not None else None
        if problem is not None:
            raise StorageError(f"cannot open the {self.what} {mask(without_timeout(url.text))}: {problem}")


def _select_1(url: str) -> None:
    import sqlalchemy

    with _connection(url) as conn:
        conn.execute(sqlalchemy.text("SELECT 1"))


@contextlib.contextmanager
def _connection(url: str):
    """One connection to a database server, not pooled."""
    import sqlalchemy

    seconds = CONNECT_TIMEOUT.get(parse(url).scheme)
    connect_args = {} if seconds is None else {"connect_timeout": seconds}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


class ServerDatabase(StorageKind):
    """A database on a server: opening it (Optuna's RDBStorage, MLflow's store) creates its tables."""

    def probe(self, url: StorageURL) -> None:
        probe_until(lambda: _select_1(url.text), self.what, url.text)

    def exists(self, url: StorageURL) -> bool:
        """False for a database without tables (a fresh one): it holds no sweep, and `status` or
        `delete` need not open it (and create its tables) to find that out. Asked by one
        connection that writes nothing; when that fails, True (the probe says why)."""
        import sqlalchemy

        try:
            with _connection(url.text) as conn:
                return bool(sqlalchemy.inspect(conn).get_table_names())
        except Exception:  # noqa: BLE001 - unreachable: the probe reports it
            return True


# ---- Optuna storages ----------------------------------------------------------------------------


class OptunaSQLite(SQLiteFile):
    what = "Optuna storage"

    def open(self, url: StorageURL, pool: Pool | None = None) -> Any:
        import optuna

        return optuna.storages.RDBStorage(
            url.text, engine_kwargs={"connect_args": {"timeout": 60}, **engine_kwargs(pool)}
        )


class OptunaServerRDB(ServerDatabase):
    """PostgreSQL, MySQL, MariaDB and the other databases SQLAlchemy reaches over a network."""

    what = "Optuna storage"

    def open(self, url: StorageURL, pool: Pool | None = None) -> Any:
        import optuna

        kwargs: dict = {"pool_pre_ping": True, **engine_kwargs(pool)}
        if url.scheme in ("mysql", "mariadb"):
            kwargs["pool_recycle"] = 3600
        return optuna.storages.RDBStorage(url.text, engine_kwargs=kwargs)


class OptunaJournalFile(FileBacked):
    what = "Optuna storage"

    def check(self, url: StorageURL) -> str | None:
        if url.path and url.path.strip("/"):
            return None
        return "a journal URL needs a file path, e.g. journal:///tmp/optuna.log"

    def open(self, url: StorageURL, pool: Pool | None = None) -> Any:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.path or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))


class OptunaRedis(StorageKind):
    what = "Optuna storage"

    def probe(self, url: StorageURL) -> None:
        def ping() -> None:
            import redis

            redis.Redis.from_url(url.text, socket_connect_timeout=5, socket_timeout=5).ping()

        probe_until(ping, self.what, url.text)

    def open(self, url: StorageURL, pool: Pool | None = None) -> Any:
        from ..errors import StorageError
        from .urls import mask

        try:
            import redis  # noqa: F401
            from optuna.exceptions import ExperimentalWarning
            from optuna.storages.journal import JournalRedisBackend, JournalStorage
        except ImportError:
            raise StorageError(
                f"Optuna storage {mask(url.text)}: the Redis driver is missing; "
                "pip install 'mlflow-sweeper[redis]'"
            ) from None
        with warnings.catch_warnings():  # ExperimentalWarning: Optuna's, not the user's concern
            warnings.simplefilter("ignore", ExperimentalWarning)
            return JournalStorage(JournalRedisBackend(url.text))


class OptunaGrpcProxy(StorageKind):
    """grpc://HOST:PORT: Optuna's gRPC storage proxy (`mlflow-sweeper proxy`), which alone holds
    the database connections of every agent that uses it."""

    what = "Optuna storage"

    def check(self, url: StorageURL) -> str | None:
        return check_grpc_url(url.text)

    def probe(self, url: StorageURL) -> None:
        probe_grpc(url.text)

    def open(self, url: StorageURL, pool: Pool | None = None) -> Any:
        return open_grpc_storage(url.text)


# ---- MLflow tracking stores ---------------------------------------------------------------------


class MlflowStore(StorageKind):
    """A tracking store MLflow opens itself from the URI: a SQLite file or a database server."""

    what = "MLflow storage"

    def open(self, url: StorageURL, pool: Pool | None = None) -> Any:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=url.text)
        client.search_experiments(max_results=1)  # connects, creates tables on a fresh store
        return client


class MlflowSQLite(SQLiteFile, MlflowStore):
    pass


class MlflowServerRDB(ServerDatabase, MlflowStore):
    pass


class MlflowTrackingServer(MlflowStore):
    remote = True

    def probe(self, url: StorageURL) -> None:
        def health() -> None:
            import requests

            response = requests.get(url.text.rstrip("/") + "/health", timeout=5)
            if response.status_code >= 500:
                raise ConnectionError(f"HTTP {response.status_code} from the tracking server")

        probe_until(health, "MLflow storage (tracking server)", url.text)


class MlflowDatabricks(MlflowStore):
    """`databricks` or `databricks://PROFILE`: credentials come from the Databricks config."""

    remote = True

    def check(self, url: StorageURL) -> str | None:
        return None

    def probe(self, url: StorageURL) -> None:
        """A read: credentials that do not work stop the agent before any storage is written."""

        def read() -> None:
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=url.text).search_experiments(max_results=1)

        probe_until(read, self.what, url.text)


SERVER_RDB_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
RDB_SCHEMES = ("sqlite", *SERVER_RDB_SCHEMES)

OPTUNA_KINDS: dict[str, StorageKind] = {
    "sqlite": OptunaSQLite(),
    **dict.fromkeys(SERVER_RDB_SCHEMES, OptunaServerRDB()),
    "journal": OptunaJournalFile(),
    "redis": OptunaRedis(),
    "rediss": OptunaRedis(),
    "grpc": OptunaGrpcProxy(),
    "grpcs": OptunaGrpcProxy(),
}
MLFLOW_KINDS: dict[str, StorageKind] = {
    "sqlite": MlflowSQLite(),
    **dict.fromkeys(SERVER_RDB_SCHEMES, MlflowServerRDB()),
    "http": MlflowTrackingServer(),
    "https": MlflowTrackingServer(),
    "databricks": MlflowDatabricks(),
    "databricks-uc": MlflowDatabricks(),
}
MLFLOW_SCHEMES = tuple(MLFLOW_KINDS)


def _unknown_optuna(url: str) -> str:
    return f"unknown Optuna storage {url!r}; use {OPTUNA_EXAMPLES}"


def _unknown_mlflow(url: str) -> str:
    return f"unknown MLflow tracking URI {url!r}; use {MLFLOW_EXAMPLES}"


def optuna_kind(url: str) -> StorageKind:
    """The kind of an Optuna storage URL; StorageError (exit 2) for a scheme no kind handles."""
    kind = OPTUNA_KINDS.get(parse(url).scheme)
    if kind is None:
        from ..errors import StorageError

        raise StorageError(_unknown_optuna(url))
    return kind


BARE_MLFLOW_URIS = ("databricks", "databricks-uc")  # MLflow's URIs that are only a scheme


def _mlflow_scheme(url: str) -> str:
    return url if url in BARE_MLFLOW_URIS else parse(url).scheme


def mlflow_kind(url: str) -> StorageKind:
    """The kind of an MLflow tracking URI; StorageError (exit 2) for a scheme no kind handles."""
    scheme = _mlflow_scheme(url)
    kind = MLFLOW_KINDS.get(scheme)
    if kind is None:
        from ..errors import StorageError

        raise StorageError(check_mlflow_url(url) or _unknown_mlflow(url))
    return kind


def _is_file_store(scheme: str) -> bool:
    """MLflow's file store: `file:` or a bare path (`./mlruns`, `C:\\mlruns`)."""
    return scheme in ("", "file") or len(scheme) == 1


def _file_store(url: str) -> str:
    return (
        f"MLflow's file store ({url!r}) is not supported: agents cannot share a sweep in it safely "
        "(it makes no update atomic), and MLflow itself has moved its default to SQLite; use "
        "sqlite:///mlflow.db (or a database or tracking server for several machines)"
    )


def is_remote_tracking(url: str) -> bool:
    """Is this MLflow tracking URI a server reached over the network (http(s), Databricks)?"""
    kind = MLFLOW_KINDS.get(_mlflow_scheme(url))
    return kind is not None and kind.remote


def check_optuna_url(url: str) -> str | None:
    parsed = parse(url)
    kind = OPTUNA_KINDS.get(parsed.scheme)
    return _unknown_optuna(url) if kind is None else kind.check(parsed)


def check_mlflow_url(url: str) -> str | None:
    scheme = _mlflow_scheme(url)
    kind = MLFLOW_KINDS.get(scheme)
    if kind is None:
        return _file_store(url) if _is_file_store(scheme) else _unknown_mlflow(url)
    problem = kind.check(parse(url))
    if problem is None:
        return None
    return problem if isinstance(kind, SQLiteFile) else _unknown_mlflow(url)


def _any_kind(parsed: StorageURL) -> StorageKind | None:
    return OPTUNA_KINDS.get(parsed.scheme) or MLFLOW_KINDS.get(parsed.scheme)


def resolve(url: str, base_dir: Path) -> str:
    """Make a file path in a storage URL (SQLite, journal) absolute against `base_dir`."""
    parsed = parse(url)
    kind = _any_kind(parsed)
    return url if kind is None else kind.resolve(parsed, base_dir)


def exists(url: str) -> bool:
    """False when a file-backed store (SQLite, journal) has no file yet: it holds no sweep."""
    parsed = parse(url)
    kind = _any_kind(parsed)
    return True if kind is None else kind.exists(parsed)


def probe_optuna_storage(url: str) -> None:
    """Check that the Optuna storage answers, writing nothing."""
    _checked(optuna_kind(url), url).probe(parse(url))


def probe_mlflow_storage(url: str) -> None:
    """Check that the MLflow tracking store or server answers, writing nothing (its URL checked
    first: one from MLFLOW_TRACKING_URI has not been, as the config's keys are; the caller says
    where it was named)."""
    _checked(mlflow_kind(url), url).probe(parse(url))


def _checked(kind: StorageKind, url: str) -> StorageKind:
    problem = kind.check(parse(url))
    if problem is not None:
        from ..errors import StorageError

        raise StorageError(problem)
    return kind
