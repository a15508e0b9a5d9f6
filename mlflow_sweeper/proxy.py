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
import signal
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor

from . import compat
from .errors import StorageError
from .proxy_auth import check_listen, read_token_file, server_credentials, server_interceptors
from .storages import mask, open_optuna_storage, parse, probe_optuna_storage
from .storages.grpc import DEFAULT_HOST, DEFAULT_PORT, require_grpc

log = logging.getLogger(__name__)

DEFAULT_THREADS = 32
PROXY_APPLICATION = "mlflow-sweeper-proxy"
# The proxy's database pool: a few connections serve every agent (requests queue for them).
PROXY_POOL_SIZE = 4
PROXY_POOL_OVERFLOW = 4
RDB_PROXIED = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


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
    storage_url: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    threads: int = DEFAULT_THREADS,
    *,
    token_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    insecure: bool = False,
) -> None:
    """Serve the proxy until Ctrl-C or SIGTERM. The backing database is opened as agents open it
    (tables created race-free, SQLite tuned), with a small connection pool, behind Optuna's
    in-process trial cache. With a token, every call must carry it; with a certificate and key,
    the port speaks TLS."""
    require_grpc()
    token = read_token_file(token_file) if token_file else None
    check_listen(host, token, insecure)
    credentials = server_credentials(tls_cert, tls_key)
    storage = _open_backing_storage(storage_url, host, port)

    def on_sigterm(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    guard = ", token required" if token else ""
    scheme = "grpcs" if credentials is not None else "grpc"
    log.info(
        "Optuna gRPC proxy for %s on %s://%s:%d%s (Ctrl-C to stop)",
        *(mask(storage_url), scheme, host, port, guard),
    )
    server = None
    try:
        server = _start_server(storage, threads, token, credentials, f"{host}:{port}")
        server.wait_for_termination()
    except KeyboardInterrupt:
        if server is not None:
            server.stop(grace=1.0)
        log.info("proxy stopped")


def _open_backing_storage(storage_url: str, host: str, port: int):
    """The database behind the proxy, checked before anything is opened: a database storage
    URL, a free port, a server that answers."""
    if parse(storage_url).scheme not in RDB_PROXIED:
        raise StorageError(
            f"the proxy serves a database storage (sqlite, postgresql, mysql), not {mask(storage_url)}"
        )
    check_port_free(host, port)
    probe_optuna_storage(storage_url)
    return open_optuna_storage(
        storage_url,
        pool_size=PROXY_POOL_SIZE,
        max_overflow=PROXY_POOL_OVERFLOW,
        application=PROXY_APPLICATION,
    )


def _start_server(storage, threads: int, token: str | None, credentials, address: str):
    """Optuna's gRPC proxy server over the storage behind its trial cache, started on `address`
    (TLS with `credentials`), every call checked against `token`."""
    import optuna  # the proxy's own process: kept off the import of the command line

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    cached = optuna.storages.get_storage(storage)
    pool = ThreadPoolExecutor(max_workers=threads)
    server = compat.grpc_proxy_server(cached, pool, server_interceptors(token))
    if credentials is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, credentials)
    server.start()
    return server
