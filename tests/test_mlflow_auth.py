"""Sweeps against a real `mlflow server --app-name basic-auth`: an authorized user's trials
inherit the credentials and nest; a user who may not write the experiment, or whose password
is wrong, gets exit 2 before the Optuna storage is touched; no password is ever logged."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT, TRAIN, cli_env, free_port, kill_process_tree, run_cli

pytest.importorskip("flask_wtf", reason="the basic-auth app needs mlflow[auth] (Flask-WTF)")

ADMIN_PASSWORD = f"Adm1n-{uuid.uuid4().hex[:10]}"
USERS = {"alice": f"Al1ce-{uuid.uuid4().hex[:10]}", "bob": f"B0b-{uuid.uuid4().hex[:10]}"}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A real tracking server with basic auth; `alice` and `bob` are users with the default READ."""
    root = tmp_path_factory.mktemp("auth-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Checked credentials are cached for a while: a PBKDF2 check per request slows every call.
    from mlflow.server import auth

    ini = root / "basic_auth.ini"
    default_ini = (Path(auth.__file__).parent / "basic_auth.ini").read_text()
    ini.write_text(default_ini.replace("# auth_cache_ttl_seconds = 0", "auth_cache_ttl_seconds = 600"))
    env = cli_env(
        {
            "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    argv = [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
        "--default-artifact-root", (root / "artifacts").as_uri(),
    ]  # fmt: skip
    log_path = root / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            argv, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url + "/health", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server silent on {url}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        from mlflow.server import get_app_client

        with _signed_in("admin", ADMIN_PASSWORD):
            admin = get_app_client("basic-auth", tracking_uri=url)
            for name, password in USERS.items():
                admin.create_user(username=name, password=password)
        yield url, root
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        kill_process_tree(proc)


@contextlib.contextmanager
def _signed_in(user: str, password: str):
    """This process's MLflow client calls made as `user` (MLflow reads the credentials from the
    environment), as it was afterwards."""
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict(zip(names, (user, password), strict=True)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _as(user: str, password: str | None = None) -> dict:
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password or USERS[user]}


def _config(directory: Path, url: str, sweep_name: str, **keys) -> Path:
    config = {
        "experiment": "auth-exp",
        "sweep_name": sweep_name,
        "command": f"python {TRAIN}",
        "parameters": {"x": [1, 2], "y": [10]},
        "mlflow_storage": url,
        "optuna_storage": f"sqlite:///{directory / 'optuna.db'}",
        "spec": {"direction": "maximize", "metric": "score"},
        **{key: value for key, value in keys.items() if value is not None},
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _trials(url: str, sweep: str) -> list:
    from mlflow.tracking import MlflowClient

    with _signed_in("alice", USERS["alice"]):
        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("auth-exp")
        return client.search_runs([experiment.experiment_id], f"tags.`sweeper.sweep` = 'auth-exp/{sweep}'")


@pytest.mark.timeout(900)  # a server and several sweeps on a shared machine
def test_authorized_sweeps_nest_their_trials_and_others_are_refused_before_optuna(auth_server, tmp_path):
    url, server_root = auth_server
    # a model that does not exist yet may be registered into by any user (its trials log none)
    command = _config(tmp_path / "command", url, "command", register={"model_name": "alice-model"})
    result = run_cli("sweep", command, cwd=command.parent, env=_as("alice"), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logged no model" in result.stderr
    entry = _config(tmp_path / "entry", url, "entry", entry_point="train", project=str(PROJECT))
    kept = {k: v for k, v in yaml.safe_load(entry.read_text()).items() if k != "command"}
    entry.write_text(yaml.safe_dump(kept, sort_keys=False))
    result_entry = run_cli("sweep", entry, cwd=entry.parent, env=_as("alice"), timeout=400)
    assert result_entry.returncode == 0, result_entry.stderr[-3000:]
    for sweep in ("command", "entry"):
        runs = _trials(url, sweep)
        parent = next(r for r in runs if r.data.tags["sweeper.role"] == "parent")
        trials = [r for r in runs if r.data.tags["sweeper.role"] == "trial"]
        assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
        assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)
        assert sorted(r.data.metrics["score"] for r in trials) == [11.0, 12.0]  # logged by the trials

    # bob may read the experiment alice created, not write to it; a wrong password gets nowhere
    refusals = (
        (_as("bob"), "does not let this user write"),
        (_as("alice", "wrong"), "refused the credentials"),
    )
    from mlflow.tracking import MlflowClient

    with _signed_in("bob", USERS["bob"]):  # bob's model: alice may read it, not add versions to it
        MlflowClient(tracking_uri=url).create_registered_model("bob-model")
    refusals += ((_as("alice"), "does not let this user add versions to the registered model 'bob-model'"),)
    for env, said in refusals:
        register = {"model_name": "bob-model"} if "bob-model" in said else None
        refused = _config(tmp_path / f"refused-{uuid.uuid4().hex[:6]}", url, "refused", register=register)
        result_refused = run_cli("sweep", refused, cwd=refused.parent, env=env, timeout=300)
        assert result_refused.returncode == 2, result_refused.stderr[-3000:]
        assert said in result_refused.stderr and "Traceback" not in result_refused.stderr
        assert not (refused.parent / "optuna.db").exists()  # the Optuna storage was never touched
    assert not [r for r in _trials(url, "refused")]

    # bob may not delete alice's sweep either: refused before its Optuna study goes
    deleted = run_cli("delete", command, "--yes", cwd=command.parent, env=_as("bob"), timeout=300)
    assert deleted.returncode == 2, deleted.stderr[-3000:]
    assert "does not let this user delete runs of" in deleted.stderr and "Traceback" not in deleted.stderr
    kept_status = run_cli("status", command, cwd=command.parent, env=_as("alice"), timeout=300)
    assert kept_status.returncode == 0 and "2/2 done" in kept_status.stdout, kept_status.stdout
    assert len(_trials(url, "command")) == 3

    console = result.stdout + result.stderr + result_entry.stdout + result_entry.stderr
    written = [p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()]
    artifacts = [p for p in (server_root / "artifacts").rglob("*") if p.is_file()]
    written += [p.read_bytes().decode("utf-8", "replace") for p in artifacts]
    for text in [console, *written]:
        assert USERS["alice"] not in text
