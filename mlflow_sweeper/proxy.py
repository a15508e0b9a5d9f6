"""Optuna's gRPC storage proxy: many agents, a few database connections.

`mlflow-sweeper proxy STORAGE_URL` serves Optuna's proxy in front of one database storage; agents
then use `optuna_storage: grpc://HOST:PORT`. Every agent talks to the proxy over gRPC and only
the proxy holds database connections (a small pool), so hundreds of agents cost the database
what one proxy costs. The protocol needs nothing more of a storage than the proxy forwards
(atomic trial creation and state updates, reads of a study's trials), so every guarantee holds.

Both Optuna's trial caches (the client's, per process, and the proxy's `_CachedStorage`) re-read
only unfinished trials and those with a larger id than the last finished one they saw. That hides
nothing: a database storage creates a study's trials under a lock on the study's row, so within a
study ids are handed out in commit order, and a trial can never appear below a finished one.
"""

from __future__ import annotations

import errno
import logging
import re
import signal
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import StorageError

log = logging.getLogger(__name__)

GRPC_EXTRA = "pip install 'mlflow-sweeper[grpc]'"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 13000
DEFAULT_THREADS = 32
PROXY_APPLICATION = "mlflow-sweeper-proxy"
# The proxy's database pool: a few connections serve every agent (requests queue for them).
PROXY_POOL_SIZE = 4
PROXY_POOL_OVERFLOW = 4
READY_SECONDS = 8.0
RDB_PROXIED = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
URL = re.compile(r"^grpc://(?P<host>\[[^\]]+\]|[^:/\[\]]+)(?::(?P<port>\d+))?/?$")


class GrpcMissing(StorageError):
    """The [grpc] extra is not installed: exit 2, naming it, before anything is written."""


def require_grpc() -> None:
    try:
        import grpc  # noqa: F401
        from google import protobuf  # noqa: F401
    except ImportError:
        raise GrpcMissing(f"the Optuna gRPC storage proxy needs the extra [grpc]: {GRPC_EXTRA}") from None


def parse_grpc_url(url: str) -> tuple[str, int] | None:
    """(host, port) of a `grpc://HOST:PORT` URL, or None when it is not one."""
    match = URL.match(url)
    if match is None:
        return None
    return match.group("host").strip("[]"), int(match.group("port") or DEFAULT_PORT)


def check_grpc_url(url: str) -> str | None:
    if parse_grpc_url(url) is None:
        return f"{url!r} is not a gRPC proxy URL; use grpc://HOST:PORT (e.g. grpc://127.0.0.1:{DEFAULT_PORT})"
    return None


def open_grpc_storage(url: str, ready_seconds: float = READY_SECONDS) -> Any:
    """A client of a running proxy, once the proxy answers; one clear error when it does not."""
    require_grpc()
    import warnings

    import optuna

    parsed = parse_grpc_url(url)
    if parsed is None:
        raise StorageError(check_grpc_url(url) or url)
    host, port = parsed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.GrpcStorageProxy(host=host, port=port)
    try:
        storage.wait_server_ready(timeout=ready_seconds)
    except Exception as exc:  # noqa: BLE001 - turned into one message
        storage.close()
        raise StorageError(
            f"cannot reach the Optuna gRPC proxy at {host}:{port} ({type(exc).__name__}); "
            f"start it with `mlflow-sweeper proxy STORAGE_URL --host {host} --port {port}`"
        ) from None
    return storage


def probe_grpc(url: str) -> None:
    open_grpc_storage(url).close()


def check_port_free(host: str, port: int) -> None:
    """gRPC binds with SO_REUSEPORT: a second proxy on a port in use would start without a word
    and share it, and agents would then reach one storage or the other at random. A plain bind
    (no SO_REUSEPORT) fails on a port that anything listens on; SO_REUSEADDR lets it pass over
    the closing connections of a proxy just stopped."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StorageError(f"cannot serve the proxy on {host}:{port}: {exc}") from None
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            why = "the port is in use (another proxy?)" if exc.errno == errno.EADDRINUSE else str(exc)
            raise StorageError(
                f"cannot serve the proxy on {host}:{port}: {why}; choose another --port"
            ) from None


def serve(
    storage_url: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, threads: int = DEFAULT_THREADS
) -> None:
    """Serve the proxy until Ctrl-C or SIGTERM. The backing database is opened as agents open it
    (tables created race-free, SQLite tuned), with a small connection pool, behind Optuna's
    in-process trial cache."""
    require_grpc()
    import optuna

    from .storages import mask, open_optuna_storage, parse, probe_optuna_storage

    if parse(storage_url).scheme not in RDB_PROXIED:
        raise StorageError(
            f"the proxy serves a database storage (sqlite, postgresql, mysql), not {mask(storage_url)}"
        )
    check_port_free(host, port)
    probe_optuna_storage(storage_url)
    storage = open_optuna_storage(
        storage_url,
        pool_size=PROXY_POOL_SIZE,
        max_overflow=PROXY_POOL_OVERFLOW,
        application=PROXY_APPLICATION,
    )

    def on_sigterm(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    log.info("Optuna gRPC proxy for %s on %s:%d (Ctrl-C to stop)", mask(storage_url), host, port)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    try:
        cached = optuna.storages.get_storage(storage)
        pool = ThreadPoolExecutor(max_workers=threads)
        optuna.storages.run_grpc_proxy_server(cached, host=host, port=port, thread_pool=pool)
    except KeyboardInterrupt:
        log.info("proxy stopped")
