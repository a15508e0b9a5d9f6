"""A lock held on the database server while a store's tables are created or checked.

MLflow creates its tables with Alembic migrations. MySQL and MariaDB cannot roll DDL back, so two
agents migrating one fresh database at once collide half-way ("Online migration expected to
match one row ... 0 found") and one of them fails. The server's own named lock (MySQL's
`GET_LOCK`, PostgreSQL's advisory locks) serialises the agents opening the store: the first
creates the tables, the others then find them. It lives in the server, so it holds across
machines, and it is released with its connection, so a dead agent never leaves it behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from .urls import parse

LOCK_SECONDS = 300  # how long an agent waits for another one's migrations
MYSQL_SCHEMES = ("mysql", "mariadb")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def lock_name(url: str) -> str:
    """One name per database: agents opening other databases of the server never wait."""
    digest = hashlib.sha256(url.split("?", 1)[0].encode()).hexdigest()[:32]
    return f"mlflow-sweeper-create-{digest}"


@contextmanager
def server_lock(url: str, seconds: float = LOCK_SECONDS) -> Iterator[None]:
    """Hold the database's creation lock (a no-op for other stores)."""
    scheme = parse(url).scheme
    if scheme not in MYSQL_SCHEMES + POSTGRES_SCHEMES:
        yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    name = lock_name(url)
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if scheme in MYSQL_SCHEMES:
                got = connection.execute(
                    sqlalchemy.text("SELECT GET_LOCK(:name, :seconds)"),
                    {"name": name, "seconds": int(seconds)},
                ).scalar()
                if got != 1:
                    raise TimeoutError(f"another agent has been creating the tables for over {seconds:.0f} s")
            else:
                key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
                connection.execute(sqlalchemy.text(f"SET lock_timeout = '{int(seconds)}s'"))
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            yield  # released with the connection
    finally:
        engine.dispose()
