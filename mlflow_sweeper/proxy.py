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
ACCESS_PROBE_STUDY = "mlflow-sweeper access check"  # looked up, never created
RDB_PROXIED = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
URL = re.compile(r"^grpcs?://(?P<host>\[[^\]]+\]|[^:/\[\]]+)(?::(?P<port>\d+))?/?$")


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


def uses_tls(url: str) -> bool:
    return url.lower().startswith("grpcs://")


def check_grpc_url(url: str) -> str | None:
    if parse_grpc_url(url) is None:
        return (
            f"{url!r} is not a gRPC proxy URL; use grpc://HOST:PORT (e.g. grpc://127.0.0.1:{DEFAULT_PORT}), "
            "or grpcs://HOST:PORT for a proxy serving TLS"
        )
    return None


def open_grpc_storage(url: str, ready_seconds: float = READY_SECONDS) -> Any:
    """A client of a running proxy, once the proxy answers and accepts this agent (its token, its
    certificate); one clear error when it does not, before anything is written."""
    require_grpc()
    import warnings

    import grpc
    import optuna

    from . import compat
    from .proxy_auth import client_channel, refusal

    parsed = parse_grpc_url(url)
    if parsed is None:
        raise StorageError(check_grpc_url(url) or url)
    host, port = parsed
    tls = uses_tls(url)
    with client_channel(host, port, tls) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=ready_seconds)
        except grpc.FutureTimeoutError:
            if tls:
                raise refusal(TimeoutError(), f"{host}:{port}", tls) from None
            raise StorageError(
                f"cannot reach the Optuna gRPC proxy at {host}:{port}; "
                f"start it with `mlflow-sweeper proxy STORAGE_URL --host {host} --port {port}`"
            ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = compat.grpc_storage_proxy(host, port, lambda: client_channel(host, port, tls))
    try:
        storage.get_study_id_from_name(ACCESS_PROBE_STUDY)  # a read that needs the token
    except KeyError:
        pass
    except grpc.RpcError as exc:
        storage.close()
        raise refusal(exc, f"{host}:{port}", tls) from None
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
    import optuna

    from . import compat
    from .proxy_auth import check_listen, read_token_file, server_credentials, server_interceptors
    from .storages import mask, open_optuna_storage, parse, probe_optuna_storage

    token = read_token_file(token_file) if token_file else None
    check_listen(host, token, insecure)
    credentials = server_credentials(tls_cert, tls_key)

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
    guard = ", token required" if token else ""
    scheme = "grpcs" if credentials is not None else "grpc"
    log.info(
        "Optuna gRPC proxy for %s on %s://%s:%d%s (Ctrl-C to stop)",
        *(mask(storage_url), scheme, host, port, guard),
    )
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    server = None
    try:
        cached = optuna.storages.get_storage(storage)
        pool = ThreadPoolExecutor(max_workers=threads)
        server = compat.grpc_proxy_server(cached, pool, server_interceptors(token))
        address = f"{host}:{port}"
        if credentials is None:
            server.add_insecure_port(address)
        else:
            server.add_secure_port(address, credentials)
        server.start()
        server.wait_for_termination()
    except KeyboardInterrupt:
        if server is not None:
            server.stop(grace=1.0)
        log.info("proxy stopped")
