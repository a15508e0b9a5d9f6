"""Retrying transient storage errors: a busy SQLite file, a restarting or unreachable server."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

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
# A store's schema that another process (`mlflow ui`, a script, not an agent: agents take turns
# under a lock) is creating or migrating at the same moment: wait for it to finish.
MIGRATION_RACE_PATTERNS = re.compile(
    r"Online migration expected|No such constraint|no such table|out-of-date database schema|alembic",
    re.IGNORECASE,
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


# Enough backoff (about a minute) to ride out a database server or a gRPC proxy restarting.
OUTAGE_ATTEMPTS = 18
# An agent told to stop (Ctrl-C) leaves within seconds: a storage still down is not waited out.
STOPPING_ATTEMPTS = 3
_stopping = threading.Event()


def stop_waiting_out_outages(stopping: bool = True) -> None:
    """The agent is stopping (or, with False, starting): how long storage errors are retried."""
    if stopping:
        _stopping.set()
    else:
        _stopping.clear()


def retry(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int = OUTAGE_ATTEMPTS,
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
            patience = min(attempts, STOPPING_ATTEMPTS) if _stopping.is_set() else attempts
            if not retriable or attempt >= patience:
                raise
            log.debug("%s: transient error (%s), retry %d", what, exc, attempt)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


def first_line(exc: BaseException) -> str:
    """The first line of an error, short enough for a one-line message."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


PROBE_SECONDS = 8.0


def missing_driver(module: str | None) -> str:
    """What to do about a database driver that is not installed."""
    if module == "MySQLdb":  # what SQLAlchemy loads for a bare mysql://
        return (
            "the mysqlclient driver (MySQLdb) is missing: write mysql+pymysql://... and "
            "pip install 'mlflow-sweeper[mysql]' (PyMySQL), or install mysqlclient"
        )
    return (
        f"a database driver is missing ({module}); install the extra, "
        "e.g. pip install 'mlflow-sweeper[postgres]', '[mysql]' or '[redis]'"
    )


def probe_until(check: Callable[[], None], what: str, url: str) -> None:
    """Try `check` for up to PROBE_SECONDS; raise one clear StorageError if it never passes."""
    from ..errors import StorageError
    from .urls import mask

    deadline = time.monotonic() + PROBE_SECONDS
    delay = 0.2
    while True:
        try:
            check()
            return
        except ModuleNotFoundError as exc:
            raise StorageError(f"{what} {mask(url)}: " + missing_driver(exc.name)) from None
        except Exception as exc:  # noqa: BLE001 - reported below
            if time.monotonic() + delay > deadline or not is_transient(exc):
                raise StorageError(f"cannot reach the {what} {mask(url)}: {first_line(exc)}") from None
            time.sleep(delay)
            delay = min(delay * 2, 3.0)
