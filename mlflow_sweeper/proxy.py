"""Optuna's gRPC storage proxy: many agents, a few database connections.

`mlflow-sweeper proxy STORAGE_URL` serves Optuna's proxy in front of one database storage; agents
then use `optuna_storage: grpc://HOST:PORT`. Every agent talks to the proxy over gRPC and only
the proxy holds database connections (a small pool), so hundreds of agents cost the database
what one proxy costs. The protocol needs nothing more of a storage than the proxy forwards
(atomic trial creation and state updates, reads of a study's trials), so every guarantee holds.

Both Optuna's trial caches (the client's, per process, and the proxy's `_CachedStorage`) re-read
only unfinished trials and those with a larger id than the last finished one they saw. That hides
nothing for long: a database storage creates a study's trials under a lock on the study's row, so
within a study ids are handed out in commit order, and a trial can never appear below a finished
one. For a moment it can below an unfinished one: `_CachedStorage` adds a trial it creates to its
cache at once, so a read made meanwhile may hold it without an older trial created elsewhere; the
next read holds both (the close election reads again on such a gap, `coordination/closing.py`).

One Python process serves calls one at a time (its interpreter lock), so on a database server the
proxy runs several worker processes on one port (SO_REUSEPORT: the kernel spreads the agents'
connections over them), each with its share of the connection pool and its own trial cache. The
argument above holds for each cache, as it does for agents that each open the database.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass

from . import compat
from .errors import StorageError, SweeperError, UsageError
from .proxy_auth import (
    bare_host,
    check_listen,
    host_port,
    read_token_file,
    server_credentials,
    server_interceptors,
)
from .storages import mask, open_optuna_storage, parse, probe_optuna_storage
from .storages.grpc import DEFAULT_HOST, DEFAULT_PORT, require_grpc

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
PROXY_APPLICATION = "mlflow-sweeper-proxy"
# The proxy's database pool: a few connections serve every agent (requests queue for them).
PROXY_POOL_SIZE = 4
PROXY_POOL_OVERFLOW = 4
RDB_PROXIED = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
MAX_DEFAULT_WORKERS = 4
PARENT_CHECK_SECONDS = 1.0


def default_workers(storage_url: str) -> int:
    """One worker per core (at most MAX_DEFAULT_WORKERS) for a database server; one for SQLite,
    whose file takes one writer at a time anyway."""
    if parse(storage_url).scheme == "sqlite":
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class WorkerPlan:
    """What each worker process serves, and with how many database connections."""

    storage_url: str
    address: str
    threads: int
    token: str | None
    tls_cert: str | None
    tls_key: str | None
    pool_size: int
    pool_overflow: int

    @classmethod
    def sharing_pool(cls, workers: int, threads: int = DEFAULT_THREADS, **fields) -> WorkerPlan:
        """The proxy's connection pool split between its workers, so that more workers do not
        cost the database more connections held open (at least one each). Its overflow lets a
        worker reach one connection more than its threads for a moment: a call that needs a
        second connection while it holds one (opening the storage does) then always finds it,
        where with fewer, threads holding one each could wait for one another until the pool's
        timeout. Overflow connections are closed as soon as they are given back."""
        pool_size = max(1, PROXY_POOL_SIZE // workers)
        return cls(
            pool_size=pool_size,
            pool_overflow=max(1, PROXY_POOL_OVERFLOW // workers, threads + 1 - pool_size),
            threads=threads,
            **fields,
        )


def check_port_free(host: str, port: int) -> None:
    """gRPC binds with SO_REUSEPORT: a second proxy on a port in use would start without a word
    and share it, and agents would then reach one storage or the other at random. A plain bind
    (no SO_REUSEPORT) fails on a port that anything listens on; SO_REUSEADDR lets it pass over
    the closing connections of a proxy just stopped."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StorageError(f"cannot serve the proxy on {host_port(host, port)}: {exc}") from None
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            why = "the port is in use (another proxy?)" if exc.errno == errno.EADDRINUSE else str(exc)
            raise StorageError(
                f"cannot serve the proxy on {host_port(host, port)}: {why}; choose another --port"
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
    workers: int | None = None,
) -> None:
    """Serve the proxy until Ctrl-C or SIGTERM. The backing database is opened as agents open it
    (tables created race-free, SQLite tuned), with a small connection pool, behind Optuna's
    in-process trial cache. With a token, every call must carry it; with a certificate and key,
    the port speaks TLS. `workers` processes share the port (default: `default_workers`)."""
    require_grpc()
    host = bare_host(host)
    token = read_token_file(token_file) if token_file else None
    check_listen(host, token, insecure)
    _check_credentials(server_credentials(tls_cert, tls_key))
    workers = default_workers(storage_url) if workers is None else workers  # >= 1: the CLI checks
    _check_backing_storage(storage_url, host, port)
    signal.signal(signal.SIGTERM, _interrupt)
    plan = WorkerPlan.sharing_pool(
        workers, storage_url=storage_url, address=host_port(host, port), threads=threads, token=token,
        tls_cert=tls_cert, tls_key=tls_key,
    )  # fmt: skip
    guard = ", token required" if token else ""
    scheme = "grpcs" if tls_cert else "grpc"
    processes = f", {workers} worker processes" if workers > 1 else ""
    log.info(
        "Optuna gRPC proxy for %s on %s://%s%s%s (Ctrl-C to stop)",
        *(mask(storage_url), scheme, host_port(host, port), guard, processes),
    )
    with suppress(KeyboardInterrupt):
        if workers == 1:
            _serve_worker(plan)
        else:
            _run_workers(plan, workers)
    log.info("proxy stopped")


def _check_credentials(credentials) -> None:
    """A certificate and key that gRPC cannot serve TLS with fail here, once, with one message,
    before anything starts (gRPC reads them only when a port is added)."""
    if credentials is None:
        return
    import grpc

    probe = grpc.server(ThreadPoolExecutor(max_workers=1))
    try:
        probe.add_secure_port("127.0.0.1:0", credentials)
    except RuntimeError:
        raise UsageError(
            "--tls-cert/--tls-key: gRPC cannot serve TLS with them; give a PEM certificate and its "
            "private key"
        ) from None
    finally:
        probe.stop(None)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _run_workers(plan: WorkerPlan, workers: int) -> None:
    """Start the worker processes and watch them: if one ends, the rest are stopped and the
    proxy fails (a port served by part of the proxy would fail some agents only)."""
    context = multiprocessing.get_context("spawn")  # gRPC must not be forked once started
    processes = [context.Process(target=_worker_main, args=(plan,)) for _ in range(workers)]
    try:
        for process in processes:
            process.start()
        ended = multiprocessing.connection.wait([process.sentinel for process in processes])
        gone = next(p for p in processes if p.sentinel in ended)
        gone.join(timeout=10)
        code = gone.exitcode
        raise SweeperError(f"a proxy worker process ended (exit code {code}); the proxy stopped")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)


def _worker_main(plan: WorkerPlan) -> None:
    """A worker process: serve until SIGTERM or Ctrl-C. An error ends it with one line (the
    parent then stops the others and fails), not a traceback."""
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        with suppress(KeyboardInterrupt):
            _serve_worker(plan)
    except Exception as exc:  # noqa: BLE001 - told in one line; the proxy stops whole
        log.error("proxy worker %d: %s", os.getpid(), exc)
        sys.exit(1)


def _end_with_parent(parent: int) -> None:
    """A worker whose proxy was killed outright (SIGKILL: no chance to stop its workers) stops
    too, instead of serving the port on its own."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def _serve_worker(plan: WorkerPlan) -> None:
    """Serve the port in this process until interrupted."""
    storage = open_optuna_storage(
        plan.storage_url,
        pool_size=plan.pool_size,
        max_overflow=plan.pool_overflow,
        application=PROXY_APPLICATION,
    )
    credentials = server_credentials(plan.tls_cert, plan.tls_key)
    server = _start_server(storage, plan.threads, plan.token, credentials, plan.address)
    try:
        server.wait_for_termination()
    finally:
        server.stop(grace=1.0)


def _check_backing_storage(storage_url: str, host: str, port: int) -> None:
    """The database behind the proxy, checked before anything is opened: a database storage
    URL, a free port, a server that answers."""
    if parse(storage_url).scheme not in RDB_PROXIED:
        raise StorageError(
            f"the proxy serves a database storage (sqlite, postgresql, mysql), not {mask(storage_url)}"
        )
    check_port_free(host, port)
    probe_optuna_storage(storage_url)


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
