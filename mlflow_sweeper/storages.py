"""Opening the two storages safely: URL checks, race-free creation, transient-error retries.

Optuna URLs: any RDB URL (`sqlite:///`, `postgresql://`, `mysql+pymysql://`), a journal file
(`journal:///abs/path.log` or `journal://relative/path.log`) and Redis through Optuna's journal
Redis backend (`redis://host:port/db`, `rediss://...`).
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from .errors import StorageError

T = TypeVar("T")
log = logging.getLogger(__name__)

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
MLFLOW_SCHEMES = RDB_SCHEMES + ("http", "https", "databricks", "databricks-uc")
TRANSIENT_PATTERNS = re.compile(
    r"database is locked|could not connect|connection (?:refused|reset|closed|was closed)"
    r"|server closed the connection|terminating connection|lost connection|gone away"
    r"|deadlock|serializ|timeout|timed out|too many connections|cannot connect|try again"
    r"|connection to server|the database system is (?:starting up|shutting down)|broken pipe"
    r"|Error 111|Connection refused|ConnectionError|temporarily unavailable|SSL SYSCALL",
    re.IGNORECASE,
)
RACE_PATTERNS = re.compile(
    r"already exists|duplicate|unique constraint|UNIQUE constraint|IntegrityError",
    re.IGNORECASE,
)


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""


def mask(url: str) -> str:
    """A URL fit for messages: the password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def check_optuna_url(url: str) -> str | None:
    scheme = _scheme(url)
    if scheme in RDB_SCHEMES or scheme in ("redis", "rediss"):
        return None if "://" in url else f"{url!r} is not a URL (e.g. sqlite:///optuna.db)"
    if scheme == "journal":
        path = url[len("journal:") :].lstrip("/")
        return None if path else "a journal URL needs a file path, e.g. journal:///tmp/optuna.log"
    return (
        f"unknown Optuna storage {url!r}; use sqlite:///FILE, postgresql://..., "
        "mysql+pymysql://..., journal:///FILE.log or redis://HOST:PORT/DB"
    )


def check_mlflow_url(url: str) -> str | None:
    scheme = _scheme(url)
    if scheme in MLFLOW_SCHEMES and ("://" in url or scheme.startswith("databricks")):
        return None
    return (
        f"unknown MLflow tracking URI {url!r}; use sqlite:///FILE, postgresql://..., "
        "mysql+pymysql://... or http(s)://HOST:PORT of a tracking server"
    )


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: a busy SQLite file, a restarting or unreachable server.

    Optuna wraps database errors (StorageInternalError), so the whole cause chain is read.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_itself(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient_itself(exc: BaseException) -> bool:
    import sqlalchemy.exc as sa_exc

    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError):
        return True
    try:
        import redis

        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            return True
    except ImportError:
        pass
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return bool(TRANSIENT_PATTERNS.search(text))


def retry(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int = 8,
    first_delay: float = 0.05,
    max_delay: float = 5.0,
    also: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call fn, retrying transient storage errors with jittered exponential backoff."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            retriable = is_transient(exc) or (also is not None and also(exc))
            if not retriable or attempt == attempts:
                raise
            log.debug("%s: transient error (%s), retry %d", what, exc, attempt)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


@contextmanager
def local_lock(lock_dir: Path, name: str, timeout: float = 120.0):
    """A host-local lock file in `lock_dir`, removed after use.

    Only a speed-up: what it guards is also retried on the race it prevents, so a lock file
    removed while another process waits on it costs a retry, never correctness.
    """
    from filelock import FileLock

    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[-120:]}.lock"
    lock = FileLock(str(path), timeout=timeout)
    with lock:
        try:
            yield
        finally:
            with suppress(OSError):
                os.unlink(path)


PROBE_SECONDS = 8.0


def _probe(check: Callable[[], None], what: str, url: str) -> None:
    """Try `check` for up to PROBE_SECONDS; raise one clear StorageError if it never passes."""
    deadline = time.monotonic() + PROBE_SECONDS
    delay = 0.2
    while True:
        try:
            check()
            return
        except ModuleNotFoundError as exc:
            raise StorageError(
                f"{what} {mask(url)}: a database driver is missing ({exc.name}); install the extra, "
                "e.g. pip install 'mlflow-sweeper[postgres]', '[mysql]' or '[redis]'"
            ) from None
        except Exception as exc:  # noqa: BLE001 - reported below
            if time.monotonic() + delay > deadline or not is_transient(exc):
                raise StorageError(f"cannot reach the {what} {mask(url)}: {_first_line(exc)}") from None
            time.sleep(delay)
            delay = min(delay * 2, 3.0)


def _probe_sql(url: str) -> None:
    import sqlalchemy

    if _sqlite_path(url) is not None:
        return  # a local file: created when opened
    engine = sqlalchemy.create_engine(
        url, connect_args=_connect_timeout(url), poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    finally:
        engine.dispose()


def _connect_timeout(url: str) -> dict:
    scheme = _scheme(url)
    if scheme in ("postgresql", "postgres"):
        return {"connect_timeout": 5}
    if scheme in ("mysql", "mariadb"):
        return {"connect_timeout": 5}
    return {}


def probe_optuna_storage(url: str) -> None:
    """Check that the Optuna storage answers, writing nothing."""
    scheme = _scheme(url)
    if scheme == "journal":
        return
    if scheme in ("redis", "rediss"):

        def ping() -> None:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).ping()

        _probe(ping, "Optuna storage", url)
        return
    _probe(lambda: _probe_sql(url), "Optuna storage", url)


def probe_mlflow_storage(url: str) -> None:
    """Check that the MLflow tracking store or server answers, writing nothing."""
    scheme = _scheme(url)
    if scheme in ("http", "https"):

        def health() -> None:
            import requests

            response = requests.get(url.rstrip("/") + "/health", timeout=5)
            if response.status_code >= 500:
                raise ConnectionError(f"HTTP {response.status_code} from the tracking server")

        _probe(health, "MLflow storage (tracking server)", url)
        return
    if scheme.startswith("databricks"):
        return
    _probe(lambda: _probe_sql(url), "MLflow storage", url)


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None
    return None


def _use_wal(path: Path) -> None:
    """WAL lets readers and one writer work at once: far fewer busy waits with many agents."""
    import sqlite3

    try:
        with sqlite3.connect(str(path), timeout=60) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        log.debug("could not switch %s to WAL: %s", path, exc)


def tune_sqlite_engine(engine, *, immediate: bool) -> None:
    """Make an SQLite engine safe and quick for many agents.

    * `immediate`: every transaction starts with BEGIN IMMEDIATE. Python's sqlite3 driver only
      begins a transaction at the first write, so Optuna's read-check-write updates (taking a
      WAITING trial, failing a RUNNING one) could both succeed in two processes; holding the
      write lock from the first read makes them atomic, as row locks do on a server.
    * synchronous=NORMAL under WAL: commits skip the fsync (durable across process crashes, not
      power loss); the fsync was the largest part of a sweep's own cost per trial.
    """
    import sqlalchemy

    if engine is None or engine.dialect.name != "sqlite":
        return

    def on_connect(dbapi_connection, _record) -> None:
        if immediate:
            dbapi_connection.isolation_level = None  # the driver no longer issues BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    sqlalchemy.event.listen(engine, "connect", on_connect)
    if immediate:
        sqlalchemy.event.listen(engine, "begin", on_begin)
    engine.dispose()  # pooled connections reconnect with these settings


def with_sqlite_timeout(url: str, seconds: int = 60) -> str:
    """An MLflow SQLite URI whose connections wait for a busy database instead of failing."""
    if _sqlite_path(url) is None or "timeout=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"timeout={seconds}"


def open_optuna_storage(url: str):
    """Open (creating if needed) an Optuna storage; safe when many agents start at once."""
    import optuna

    scheme = _scheme(url)

    def build():
        if scheme == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(url[len("journal://") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if scheme in ("redis", "rediss"):
            try:
                import redis  # noqa: F401
                from optuna.storages.journal import JournalRedisBackend, JournalStorage
            except ImportError:
                raise StorageError(
                    f"Optuna storage {mask(url)}: the Redis driver is missing; "
                    "pip install 'mlflow-sweeper[redis]'"
                ) from None
            return JournalStorage(JournalRedisBackend(url))
        engine_kwargs: dict = {"pool_pre_ping": True}
        if scheme == "sqlite":
            engine_kwargs = {"connect_args": {"timeout": 60}}
        elif scheme in ("mysql", "mariadb"):
            engine_kwargs["pool_recycle"] = 3600
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)

    return _open_safely(
        url, build, "Optuna storage", lambda storage: getattr(storage, "engine", None), immediate=True
    )


def _open_safely(
    url: str, build: Callable[[], T], what: str, engine_of: Callable[[T], object], *, immediate: bool
) -> T:
    """Open a storage with `build`: retried through races and transient errors, a SQLite file
    created under a host lock, switched to WAL and tuned; failures become one clear message."""

    def create() -> T:
        return retry(
            build, f"open {mask(url)}", attempts=10, also=lambda e: bool(RACE_PATTERNS.search(str(e)))
        )

    try:
        sqlite = _sqlite_path(url)
        if sqlite is None:
            return create()
        sqlite.parent.mkdir(parents=True, exist_ok=True)
        with local_lock(sqlite.parent, f".{sqlite.name}.create"):
            opened = create()
            _use_wal(sqlite)
        tune_sqlite_engine(engine_of(opened), immediate=immediate)
        return opened
    except StorageError:
        raise
    except ModuleNotFoundError as exc:
        raise StorageError(
            f"{what} {mask(url)}: a database driver is missing ({exc.name}); install the extra, "
            "e.g. pip install 'mlflow-sweeper[postgres]', '[mysql]' or '[redis]'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - turned into one clear message
        raise StorageError(f"cannot open the {what} {mask(url)}: {_first_line(exc)}") from None


def open_mlflow_tracking(url: str):
    """An MlflowClient on `url`, its store created race-free; the URL becomes MLflow's current.

    A SQLite URI gets a busy timeout, which trials inherit through MLFLOW_TRACKING_URI.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    url = with_sqlite_timeout(url)

    def build():
        client = MlflowClient(tracking_uri=url)
        client.search_experiments(max_results=1)  # connects, creates tables on a fresh store
        return client

    from .compat import sql_engine

    client = _open_safely(url, build, "MLflow storage", sql_engine, immediate=False)
    mlflow.set_tracking_uri(url)
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
