"""The gRPC proxy with a token and TLS, against real proxy subprocesses: who gets in, who is
refused (exit 2, one message, nothing written)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env, free_port, kill_process_tree, run_cli, write_config

pytest.importorskip("grpc")

from mlflow_sweeper.errors import StorageError, UsageError  # noqa: E402
from mlflow_sweeper.proxy_auth import CA_ENV, TOKEN_ENV, check_listen, host_port  # noqa: E402
from mlflow_sweeper.storages.grpc import open_grpc_storage  # noqa: E402

TOKEN = "proxy-token-5f2c9a"


def _ca(directory: Path, name: str) -> tuple[Path, object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def _server_cert(directory: Path, ca_cert, ca_key) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    db = tmp_path / "optuna.db"
    log_path = tmp_path / f"proxy-{port}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow_sweeper", "proxy", f"sqlite:///{db}", "--port", str(port), *extra],
            env=cli_env(), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    return proc, port, log_path


@pytest.fixture
def token_proxy(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc, port, log_path = _start(tmp_path, "--token-file", str(token_file))
    yield port
    kill_process_tree(proc)


@pytest.fixture
def tls_proxy(tmp_path):
    ca_path, ca_cert, ca_key = _ca(tmp_path, "good-ca")
    bad_ca_path, _, _ = _ca(tmp_path, "bad-ca")
    cert, key = _server_cert(tmp_path, ca_cert, ca_key)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    proc, port, log_path = _start(
        tmp_path, "--token-file", str(token_file), "--tls-cert", str(cert), "--tls-key", str(key)
    )
    yield port, ca_path, bad_ca_path
    kill_process_tree(proc)


def _open(url: str, monkeypatch, token: str | None, ca: Path | None = None, seconds: float = 60):
    for name, value in ((TOKEN_ENV, token), (CA_ENV, ca)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))
    return open_grpc_storage(url, ready_seconds=seconds)


def test_a_token_proxy_serves_the_right_token_only(token_proxy, monkeypatch):
    url = f"grpc://127.0.0.1:{token_proxy}"
    storage = _open(url, monkeypatch, TOKEN, seconds=90)  # waits for the proxy to start
    import optuna

    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "reached")
    assert [s.study_name for s in storage.get_all_studies()] == ["reached"]
    storage.close()
    for token, said in ((None, "no token"), ("wrong-token", "a wrong token")):
        with pytest.raises(StorageError) as caught:
            _open(url, monkeypatch, token)
        assert said in str(caught.value) and TOKEN_ENV in str(caught.value)
        assert TOKEN not in str(caught.value)
    # a token no gRPC header can carry: said so, not taken for the network or a certificate
    with pytest.raises(StorageError, match=f"{TOKEN_ENV}: a token may hold printable ASCII characters only"):
        _open(url, monkeypatch, "t\u00f6k\u00e9n")


def test_a_token_file_a_grpc_header_cannot_carry_is_refused(tmp_path):
    from mlflow_sweeper.proxy_auth import read_token_file

    path = tmp_path / "token"
    path.write_text("t\u00f6k\u00e9n\n", encoding="utf-8")
    with pytest.raises(UsageError, match="printable ASCII characters only"):
        read_token_file(path)
    path.write_text("s3cret-token\n")
    assert read_token_file(path) == "s3cret-token"


def test_an_agent_with_a_wrong_token_exits_2_before_writing(token_proxy, tmp_path, monkeypatch):
    url = f"grpc://127.0.0.1:{token_proxy}"
    _open(url, monkeypatch, TOKEN, seconds=90).close()
    config = write_config(tmp_path / "sweep", optuna_storage=url)
    result = run_cli("sweep", config, cwd=config.parent, env={TOKEN_ENV: "wrong-token"})
    assert result.returncode == 2, result.stderr
    assert "refused this agent (a wrong token)" in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(tmp_path / "optuna.db") as db:
        assert db.execute("select count(*) from studies").fetchone() == (0,)


def test_tls_with_the_signing_ca_and_token_and_a_bad_ca_refused(tls_proxy, monkeypatch):
    port, ca, bad_ca = tls_proxy
    url = f"grpcs://127.0.0.1:{port}"
    _open(url, monkeypatch, TOKEN, ca, seconds=90).close()
    with pytest.raises(StorageError) as caught:
        _open(url, monkeypatch, TOKEN, bad_ca, seconds=5)
    assert "certificate did not verify" in str(caught.value) and CA_ENV in str(caught.value)
    with pytest.raises(StorageError) as caught:  # plain gRPC to a TLS port: told to use grpcs://
        _open(f"grpc://127.0.0.1:{port}", monkeypatch, TOKEN, seconds=5)
    assert f"use grpcs://127.0.0.1:{port}" in str(caught.value)
    with pytest.raises(StorageError) as caught:
        _open(url, monkeypatch, "wrong-token", ca)
    assert "a wrong token" in str(caught.value)


def test_listening_beyond_loopback_needs_a_token_or_insecure(tmp_path):
    check_listen("127.0.0.1", None, False)
    check_listen("::1", None, False)
    check_listen("0.0.0.0", "tok", False)
    check_listen("0.0.0.0", None, True)
    with pytest.raises(UsageError):
        check_listen("0.0.0.0", None, False)
    argv = ["proxy", f"sqlite:///{tmp_path / 'o.db'}", "--host", "0.0.0.0", "--port", str(free_port())]
    result = run_cli(*argv, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "--token-file" in result.stderr and "--insecure" in result.stderr
    assert not (tmp_path / "o.db").exists()


def test_a_name_of_this_machine_only_is_loopback_and_an_ipv6_address_is_bracketed():
    check_listen("localhost", None, False)  # a name: every address it resolves to is loopback
    check_listen("[::1]", None, False)
    for outside in ("::", "[::]", "192.0.2.7", "no-such-host.invalid"):
        with pytest.raises(UsageError):
            check_listen(outside, None, False)
    assert host_port("::1", 13000) == host_port("[::1]", 13000) == "[::1]:13000"
    assert host_port("127.0.0.1", 13000) == "127.0.0.1:13000"


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_a_proxy_on_an_ipv6_address_serves_agents(tmp_path, host):
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback address")
    proc, port, log_path = _start(tmp_path, "--host", host, "--workers", "2")
    try:
        config = write_config(tmp_path / "sweep", optuna_storage=f"grpc://[::1]:{port}")
        result = run_cli("sweep", config, cwd=config.parent, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:] + log_path.read_text()[-3000:]
        assert f"grpc://[::1]:{port}" in log_path.read_text()
    finally:
        kill_process_tree(proc)


def test_a_certificate_grpc_cannot_serve_exits_2_before_anything_starts(tmp_path):
    """gRPC reads the certificate only when a port is added: the proxy tries it once, up front,
    instead of letting each worker process fail."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    argv = ["proxy", f"sqlite:///{tmp_path / 'o.db'}", "--port", str(free_port())]
    result = run_cli(*argv, "--tls-cert", str(bad), "--tls-key", str(bad), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gRPC cannot serve TLS with them" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.db").exists()


def test_an_agent_whose_ca_does_not_verify_the_proxy_says_so_in_one_line(tls_proxy, tmp_path, monkeypatch):
    """Not preceded by gRPC's own handshake logs."""
    port, ca, bad_ca = tls_proxy
    url = f"grpcs://127.0.0.1:{port}"
    _open(url, monkeypatch, TOKEN, ca, seconds=90).close()
    config = write_config(tmp_path / "sweep", optuna_storage=url)
    result = run_cli("sweep", config, cwd=config.parent, env={TOKEN_ENV: TOKEN, CA_ENV: str(bad_ca)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "certificate did not verify" in result.stderr, result.stderr
