"""SQLite tuned for many agents on one host: WAL, BEGIN IMMEDIATE, busy timeouts."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from .engines import once_per_engine
from .urls import parse

log = logging.getLogger(__name__)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other storages and in-memory SQLite."""
    parsed = parse(url)
    return parsed.file if parsed.scheme == "sqlite" else None


def unusable_file(path: Path) -> str | None:
    """Why a SQLite database file cannot be used, found by reading only (checked before either
    storage is written, so that a bad MLflow file does not leave a fresh Optuna one behind): a
    file that is no database, a directory, or a missing file in a folder that cannot hold it."""
    import sqlite3

    path = path.absolute()  # MLFLOW_TRACKING_URI and a proxy's URL may name it relatively
    if path.is_dir():
        return f"{path} is a directory"
    if path.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1)) as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:  # busy or locked by a writer, or no -shm to read by: opened later
            return None
        except sqlite3.DatabaseError as exc:  # not a database (a text file, another format)
            return str(exc)
        return None
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot create {path}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create {path}: {folder} is not writable"
    return None


def without_timeout(url: str) -> str:
    """A SQLite URL as its user wrote it, without the busy timeout the sweeper adds."""
    return re.sub(r"[?&]timeout=\d+$", "", url)


def use_wal(path: Path) -> None:
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

    def add() -> None:
        sqlalchemy.event.listen(engine, "connect", on_connect)
        if immediate:
            sqlalchemy.event.listen(engine, "begin", on_begin)

    once_per_engine(engine, "sqlite tuning", add)


def with_sqlite_timeout(url: str, seconds: int = 60) -> str:
    """An MLflow SQLite URI whose connections wait for a busy database instead of failing."""
    if sqlite_file(url) is None or "timeout=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"timeout={seconds}"
