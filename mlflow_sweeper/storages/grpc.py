"""The client side of Optuna's gRPC storage proxy: `grpc://HOST:PORT` (and `grpcs://` for TLS)
as an agent's Optuna storage. The proxy itself (`mlflow-sweeper proxy`) is served by `proxy.py`."""

from __future__ import annotations

import os
import re
import socket
import sys
from typing import Any

from ..errors import StorageError

GRPC_EXTRA = "pip install 'mlflow-sweeper[grpc]'"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 13000
READY_SECONDS = 8.0
ACCESS_PROBE_STUDY = "mlflow-sweeper access check"  # looked up, never created
URL = re.compile(r"^grpcs?://(?P<host>\[[^\]]+\]|[^:/\[\]]+)(?::(?P<port>\d+))?/?$")


class GrpcMissing(StorageError):
    """The [grpc] extra is not installed: exit 2, naming it, before anything is written."""


def require_grpc() -> None:
    try:
        _import_grpc_quietly()
        from google import protobuf  # noqa: F401
    except ImportError:
        raise GrpcMissing(f"the Optuna gRPC storage proxy needs the extra [grpc]: {GRPC_EXTRA}") from None


def _import_grpc_quietly() -> None:
    """gRPC, imported with its core's own logging off: its handshake errors would otherwise come
    before the one line the sweeper prints about them. The variable is read when gRPC loads, and
    put back after, so that trials inherit the environment as it was."""
    if "grpc" in sys.modules:
        return
    before = os.environ.get("GRPC_VERBOSITY")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        import grpc  # noqa: F401
    finally:
        if before is None:
            os.environ.pop("GRPC_VERBOSITY", None)


def _answers_tcp(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


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

    from .. import compat
    from ..proxy_auth import client_channel, host_port, refusal

    parsed = parse_grpc_url(url)
    if parsed is None:
        raise StorageError(check_grpc_url(url) or url)
    host, port = parsed
    tls = uses_tls(url)
    where = host_port(host, port)
    with client_channel(host, port, tls) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=ready_seconds)
        except grpc.FutureTimeoutError:
            if tls:
                raise refusal(TimeoutError(), where, tls) from None
            if _answers_tcp(host, port):
                raise StorageError(
                    f"{where} accepts connections but does not answer as a plain gRPC proxy; "
                    f"if it serves TLS (started with --tls-cert), use grpcs://{where}"
                ) from None
            raise StorageError(
                f"cannot reach the Optuna gRPC proxy at {where}; "
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
        raise refusal(exc, where, tls) from None
    return storage


def probe_grpc(url: str) -> None:
    open_grpc_storage(url).close()
