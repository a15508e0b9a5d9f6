"""Opening the two storages safely: race-free creation, transient-error retries, one clear error."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from ..errors import StorageError
from .kinds import mlflow_kind, optuna_kind
from .pools import (
    AGENT_APPLICATION,
    BoundedClient,
    Pool,
    mlflow_pool_in_effect,
    name_connections,
    set_mlflow_pool,
)
from .retry import MIGRATION_RACE_PATTERNS, RACE_PATTERNS, first_line, missing_driver, retry
from .server_lock import server_lock
from .sqlite import sqlite_file, tune_sqlite_engine, use_wal, with_sqlite_timeout
from .urls import mask, parse

T = TypeVar("T")


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


def open_optuna_storage(
    url: str,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    application: str | None = AGENT_APPLICATION,
):
    """Open (creating if needed) an Optuna storage; safe when many agents start at once.

    `pool_size`/`max_overflow` size a database engine's connection pool (SQLAlchemy's defaults
    otherwise); `application` names its PostgreSQL connections.
    """
    from ..compat import limit_pool_overflow

    kind = optuna_kind(url)
    # Pools are fitted for database servers, whose connections are scarce; a local SQLite file
    # keeps SQLAlchemy's defaults (its threads never wait for one another's connections).
    server = sqlite_file(url) is None
    wanted = None if pool_size is None or not server else Pool(pool_size, max_overflow or 0)
    # Opening checks the schema holding two connections: allow one overflow until it is done.
    pool = None if wanted is None else Pool(wanted.size, max(1, wanted.overflow))
    storage = _open_safely(
        url,
        lambda: kind.open(parse(url), pool),
        "Optuna storage",
        lambda storage: getattr(storage, "engine", None),
        immediate=True,
    )
    engine = getattr(storage, "engine", None)
    if wanted is not None and engine is not None:
        limit_pool_overflow(engine, wanted.overflow)
    if application:
        name_connections(engine, application)
    return storage


def open_mlflow_tracking(
    url: str, pool: Pool | None = None, application: str | None = None, reserved: int = 0
):  # fmt: skip
    """An MlflowClient on `url`, its store created race-free; the URL becomes MLflow's current.

    A SQLite URI gets a busy timeout, which trials inherit through MLFLOW_TRACKING_URI. `pool`
    sizes a database store's connection pool (MLflow reads it when the store is created), with
    `reserved` connections more for calls made outside the client (an in-process backend's own
    threads); `application` names its PostgreSQL connections.
    """
    from ..compat import sql_engine
    from ..tracking_store import make_current

    url = with_sqlite_timeout(url)
    kind = mlflow_kind(url)
    fitted = pool is not None and sqlite_file(url) is None  # fitted for servers only, as for Optuna
    if fitted:
        set_mlflow_pool(Pool(pool.size, pool.overflow + reserved))
    client = _open_safely(
        url, lambda: kind.open(parse(url)), "MLflow storage", sql_engine, immediate=False, server_locked=True
    )
    if application:
        name_connections(sql_engine(client), application)
    make_current(url)
    if fitted and sql_engine(client) is not None:  # a database store, on the fitted pool
        return BoundedClient(client, mlflow_pool_in_effect(), reserved)
    return client


CANNOT_OPEN = re.compile(r"unable to open database file|readonly database", re.IGNORECASE)  # never a race
YOUNG_SECONDS = 120.0  # a SQLite file this new (or not there yet) may still be being created


def _young(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < YOUNG_SECONDS
    except OSError:
        return True  # not there yet: whoever creates it first may be another process


def _wait_until_quiet(path: Path, quiet: float = 1.5, longest: float = 60.0) -> None:
    """Until the SQLite file (and its journal) went unchanged for `quiet` seconds: another
    process's migrations write it all along."""

    def state() -> tuple:
        stamps = []
        for suffix in ("", "-journal", "-wal"):
            try:
                info = Path(f"{path}{suffix}").stat()
                stamps.append((info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    deadline = time.monotonic() + longest
    last, since = state(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = state()
        if now != last:
            last, since = now, time.monotonic()


def _open_safely(
    url: str,
    build: Callable[[], T],
    what: str,
    engine_of: Callable[[T], object],
    *,
    immediate: bool,
    server_locked: bool = False,
) -> T:
    """Open a storage with `build`: retried through races and transient errors, a SQLite file
    created under a host lock, switched to WAL and tuned; failures become one clear message.

    `server_locked`: a database on a server is opened under its creation lock (`server_lock`),
    for a store whose tables are created by migrations that two agents cannot run at once."""

    sqlite = sqlite_file(url)
    being_created = sqlite is not None and _young(sqlite)

    def racing(exc: BaseException) -> bool:
        """A race with another process creating the store: agents take turns under a lock, but
        `mlflow ui` or a script opening the same new SQLite file does not, and its migrations
        fail ours in many ways (a half-made schema raises errors of every kind): wait for it."""
        text = str(exc)
        migrating = bool(MIGRATION_RACE_PATTERNS.search(text)) or (
            being_created and not isinstance(exc, ImportError | OSError) and not CANNOT_OPEN.search(text)
        )
        if migrating and sqlite is not None:
            _wait_until_quiet(sqlite)  # our next try must not run migrations beside the other's
        return migrating or bool(RACE_PATTERNS.search(text))

    def create() -> T:
        # 16 tries, backing off to 5 s: about a minute, longer than a store's first migrations
        return retry(build, f"open {mask(url)}", attempts=16, also=racing)

    try:
        if sqlite is None:
            if not server_locked:
                return create()
            with server_lock(url):
                return create()
        sqlite.parent.mkdir(parents=True, exist_ok=True)
        with local_lock(sqlite.parent, f".{sqlite.name}.create"):
            opened = create()
            use_wal(sqlite)
        tune_sqlite_engine(engine_of(opened), immediate=immediate)
        return opened
    except StorageError:
        raise
    except ModuleNotFoundError as exc:
        raise StorageError(f"{what} {mask(url)}: " + missing_driver(exc.name)) from None
    except Exception as exc:  # noqa: BLE001 - turned into one clear message
        raise StorageError(f"cannot open the {what} {mask(url)}: {first_line(exc)}") from None
