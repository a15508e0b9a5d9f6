"""How many database connections an agent holds: a few, fitted to its workers, released when idle.

An agent's threads (its `-j` workers, the maintenance loop) share one Optuna engine and one MLflow
engine. Each engine keeps one connection and opens at most `overflow` more while threads are
busy at once, closing them as soon as they are returned: an agent holds at most
2 + ceil(j / 2) server connections, and 2 when idle. Threads beyond that wait their turn for a
connection (every storage operation is short). The connections are tagged with the
`application_name` AGENT_APPLICATION, so that PostgreSQL shows whose they are.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .engines import once_per_engine

AGENT_APPLICATION = "mlflow-sweeper-agent"
POOL_TIMEOUT_SECONDS = 300  # a thread waits this long for a free connection before it errs


@dataclass(frozen=True)
class Pool:
    """A SQLAlchemy QueuePool's size: `size` kept open, up to `overflow` more while busy."""

    size: int
    overflow: int

    @property
    def most(self) -> int:
        return self.size + self.overflow


def agent_pools(n_jobs: int) -> tuple[Pool, Pool]:
    """(Optuna pool, MLflow pool) of an agent running `n_jobs` trials at once.

    MLflow reads a zero overflow as "use its default", so MLflow's share is never zero; Optuna's
    may be (its pool gets one overflow connection only while the storage is being opened).
    """
    extra = math.ceil(max(1, n_jobs) / 2)
    mlflow_overflow = math.ceil(extra / 2)
    return Pool(1, extra - mlflow_overflow), Pool(1, mlflow_overflow)


def engine_kwargs(pool: Pool | None) -> dict:
    """SQLAlchemy engine arguments for `pool` (nothing for SQLAlchemy's defaults)."""
    if pool is None:
        return {}
    return {"pool_size": pool.size, "max_overflow": pool.overflow, "pool_timeout": POOL_TIMEOUT_SECONDS}


MLFLOW_POOL_VARIABLES = ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW")


def set_mlflow_pool(pool: Pool) -> None:
    """MLflow sizes its SQLAlchemy pool from the environment when it creates a store: call this
    before the agent's MLflow client exists. A user's own setting wins."""
    os.environ.setdefault(MLFLOW_POOL_VARIABLES[0], str(pool.size))
    os.environ.setdefault(MLFLOW_POOL_VARIABLES[1], str(pool.overflow))


def mlflow_pool_in_effect() -> Pool:
    """The pool MLflow gives its database store: ours, or the user's own setting (MLflow's
    defaults are 5 and 10)."""
    size = int(os.environ.get(MLFLOW_POOL_VARIABLES[0], 5))
    overflow = int(os.environ.get(MLFLOW_POOL_VARIABLES[1], 10))
    return Pool(size, overflow)


def name_connections(engine, application: str = AGENT_APPLICATION) -> None:
    """Tag every new PostgreSQL connection of `engine` with `application_name`; the pooled ones
    reconnect. Other databases are left alone."""
    import sqlalchemy

    if engine is None or engine.dialect.name != "postgresql":
        return

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT set_config('application_name', %s, false)", (application,))
        cursor.close()
        dbapi_connection.commit()

    once_per_engine(
        engine, "application_name", lambda: sqlalchemy.event.listen(engine, "connect", on_connect)
    )


def store_turn(client: Any) -> Callable[[], AbstractContextManager]:
    """What takes a turn at `client`'s store: a `BoundedClient`'s permits, else nothing."""
    if isinstance(client, BoundedClient):
        return client.turn
    return nullcontext


class BoundedClient:
    """An MlflowClient of which at most `permits` calls run at once, for a database store.

    MLflow's database store opens a second session inside some calls while its first is open
    (`log_batch` logs params, metrics and tags each in a session of its own), so one call may hold
    two pooled connections. With an agent's small pool, threads that each hold one connection and
    wait for a second would all stall until the pool times out; with at most `pool.most - 1` calls
    at once, one of them always gets its second connection.
    """

    def __init__(self, client: Any, pool: Pool, reserved: int = 0):
        self._client = client
        # `reserved`: the pool's connections left to calls made outside this client's turns.
        self._permits = threading.BoundedSemaphore(max(1, pool.most - 1 - reserved))

    def turn(self) -> threading.BoundedSemaphore:
        """One call's turn, for MLflow calls made outside this client on the same store (an
        MLflow Projects backend creating a trial's run): `with client.turn(): ...`."""
        return self._permits

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._permits:
                return value(*args, **kwargs)

        return call
