"""SQLite tuned for many agents on one host: WAL, BEGIN IMMEDIATE, busy timeouts."""

from __future__ import annotations

import logging
from pathlib import Path

from .engines import once_per_engine
from .urls import parse

log = logging.getLogger(__name__)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other storages and in-memory SQLite."""
    parsed = parse(url)
    return parsed.file if parsed.scheme == "sqlite" else None


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
