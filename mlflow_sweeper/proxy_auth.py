"""Who may talk to the gRPC storage proxy: a shared token on every call, TLS on request.

The proxy checks `authorization: Bearer TOKEN` on every call (a server interceptor); agents send
`SWEEPER_PROXY_TOKEN` from their environment. `grpcs://HOST:PORT` speaks TLS, the proxy's
certificate verified against `SWEEPER_PROXY_CA` (a PEM file), else the system's roots.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

from .errors import StorageError, UsageError

TOKEN_ENV = "SWEEPER_PROXY_TOKEN"
CA_ENV = "SWEEPER_PROXY_CA"
HEADER = "authorization"
# Each client its own connection (gRPC shares one between a process's channels to one address):
# the kernel spreads connections over the proxy's worker processes, so a process's clients do.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.use_local_subchannel_pool", 1),
    # A proxy restarting is reconnected to within a second of its return: gRPC's own backoff grows
    # to two minutes, and every call fails at once meanwhile, past the storage retries' patience.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def bare_host(host: str) -> str:
    """A host as written (`[::1]` or `::1`) without the brackets of an IPv6 address."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def host_port(host: str, port: int) -> str:
    """`host:port` as gRPC (and a person) reads it: an IPv6 address in brackets."""
    bare = bare_host(host)
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def is_loopback(host: str) -> bool:
    """Does `host` (an address, or a name: every address it resolves to) reach this machine only?"""
    bare = bare_host(host)
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(bare, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def read_token_file(path: str | os.PathLike[str]) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"--token-file {path}: cannot read it ({exc.strerror or exc})") from None
    if not token:
        raise UsageError(f"--token-file {path}: the file is empty; put the token in it")
    if not sendable(token):
        raise UsageError(f"--token-file {path}: {UNSENDABLE}")
    return token


# What a gRPC header can carry: a token with other characters never reaches the proxy as written.
UNSENDABLE = "a token may hold printable ASCII characters only (a gRPC header carries no other)"


def sendable(token: str) -> bool:
    return all(" " <= char <= "~" for char in token)


def read_pem(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None


def check_listen(host: str, token: str | None, insecure: bool) -> None:
    """A proxy reachable from other machines without a token lets anyone read, change or delete
    every study behind it: refused unless the user says so."""
    if token is None and not insecure and not is_loopback(host):
        raise UsageError(
            f"the proxy would listen on {host} without a token: anyone who reaches the port could "
            "read, change or delete every study; give --token-file FILE (agents then set "
            f"{TOKEN_ENV}), or --insecure on a network you trust"
        )


def server_interceptors(token: str | None) -> list:
    return [] if token is None else [_token_check(token)]


def _token_check(token: str) -> Any:
    import grpc

    class _TokenCheck(grpc.ServerInterceptor):
        """Every call without the right token is refused with UNAUTHENTICATED before it reaches
        the storage."""

        def __init__(self, token: str):
            self.expected = f"Bearer {token}".encode()

            def refuse(request: Any, context: Any) -> Any:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong proxy token")

            self.refusal = grpc.unary_unary_rpc_method_handler(refuse)

        def intercept_service(self, continuation: Any, details: Any) -> Any:
            given = dict(details.invocation_metadata or ()).get(HEADER, "")
            given = given.encode() if isinstance(given, str) else bytes(given)
            if hmac.compare_digest(given, self.expected):
                return continuation(details)
            return self.refusal

    return _TokenCheck(token)


def server_credentials(cert: str | None, key: str | None) -> Any:
    """TLS credentials of the proxy, or None for a plain port."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("TLS needs both --tls-cert CERT and --tls-key KEY")
    import grpc

    return grpc.ssl_server_credentials([(read_pem(key, "--tls-key"), read_pem(cert, "--tls-cert"))])


def _token_sender(token: str) -> Any:
    import grpc

    class _SendToken(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            metadata = [*(details.metadata or ()), (HEADER, f"Bearer {token}")]
            return continuation(details._replace(metadata=metadata), request)

    return _SendToken()


def client_channel(host: str, port: int, tls: bool) -> Any:
    """The channel an agent talks to the proxy on: TLS for grpcs://, the token when one is set."""
    import grpc

    target = host_port(host, port)
    if tls:
        ca_path = os.environ.get(CA_ENV)
        roots = read_pem(ca_path, CA_ENV) if ca_path else None
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options=CHANNEL_OPTIONS)
    else:
        channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not sendable(token):
        channel.close()
        raise StorageError(f"{TOKEN_ENV}: {UNSENDABLE}")
    return grpc.intercept_channel(channel, _token_sender(token)) if token else channel


def refusal(exc: Exception, where: str, tls: bool) -> StorageError:
    """One message for a proxy that will not serve this agent."""
    import grpc

    code = exc.code() if isinstance(exc, grpc.RpcError) else None
    if code == grpc.StatusCode.UNAUTHENTICATED:
        given = "a wrong token" if os.environ.get(TOKEN_ENV, "").strip() else "no token"
        return StorageError(
            f"the Optuna gRPC proxy at {where} refused this agent ({given}): set {TOKEN_ENV} to "
            "the token in the proxy's --token-file"
        )
    if tls:
        return StorageError(
            f"cannot talk TLS to the Optuna gRPC proxy at {where}: its certificate did not verify "
            f"or it does not speak TLS; set {CA_ENV} to the CA file that signed its certificate "
            "(grpcs:// is for a proxy started with --tls-cert/--tls-key)"
        )
    detail = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
    return StorageError(f"the Optuna gRPC proxy at {where} did not answer: {detail}")
