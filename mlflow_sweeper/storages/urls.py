"""The one parser of storage URLs: every other module asks it, none splits a URL by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StorageURL:
    """A storage URL split into what the storage kinds need.

    `scheme` is lower-case without the driver (`mysql+pymysql://` -> `mysql`); `rest` is what
    follows `scheme[+driver]:`; `path` is the local file of a file-backed store (SQLite, journal),
    as written (may be relative), None for servers and for in-memory SQLite.
    """

    text: str
    scheme: str
    rest: str
    path: str | None
    query: str

    @property
    def has_authority(self) -> bool:
        """`scheme://...`: a URL, not a bare word such as `optuna.db`."""
        return self.rest.startswith("//")

    @property
    def file(self) -> Path | None:
        return Path(self.path) if self.path else None


def parse(url: str) -> StorageURL:
    head, colon, rest = url.partition(":")
    scheme = head.split("+", 1)[0].lower() if colon else ""
    body, sep, query = rest.partition("?")
    path: str | None = None
    if scheme == "sqlite" and body.startswith("///"):
        path = body[3:] or None
        if path == ":memory:" or (path or "").startswith(":memory:"):
            path = None
    elif scheme == "journal":
        path = (body[2:] if body.startswith("//") else body) or None
    return StorageURL(url, scheme, rest if colon else url, path, query if sep else "")


def with_path(url: StorageURL, path: str) -> str:
    """The URL of the same store at another file path, keeping scheme, driver and query."""
    head = url.text.partition(":")[0]
    query = f"?{url.query}" if url.query else ""
    if url.scheme == "journal":
        return f"journal://{path}{query}"
    return f"{head}:///{path}{query}"


def mask(url: str) -> str:
    """A URL fit for messages: its password, and any value from `${VAR}`, replaced by ***."""
    from ..secrets import redact

    return redact(url)


def same_database(first: str, second: str) -> bool:
    """Do two storage URLs name one database (the driver and the query aside)? Optuna and MLflow
    both keep an `alembic_version` table: they cannot share one."""
    a, b = parse(first), parse(second)
    if not a.scheme or a.scheme != b.scheme:
        return False
    if a.path or b.path:
        return a.path is not None and b.path is not None and Path(a.path).resolve() == Path(b.path).resolve()
    return a.rest.partition("?")[0].rstrip("/") == b.rest.partition("?")[0].rstrip("/")
