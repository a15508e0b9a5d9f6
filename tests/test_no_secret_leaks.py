"""No secret leaves the agent: everything a real sweep writes, searched for its secrets.

A password in each storage URL (PostgreSQL roles with real passwords) and values that came
from `${VAR}` (a fixed parameter, a swept list's value, a command argument, one printed by a
trial that runs out of memory): none may appear in either storage's tables, the MLflow
artifacts, the trial logs, the report or the console.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from conftest import TRAIN, require_server, run_cli

PG_PASSWORD = f"PgS3cret-{uuid.uuid4().hex[:8]}"
VAR_SECRET = f"VarS3cret-{uuid.uuid4().hex[:8]}"
LIST_SECRET = f"ListS3cret-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def secret_databases():
    """Two fresh PostgreSQL databases owned by a fresh role with a password; URLs with it."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import psycopg2

    role = f"sweeper_sec_{uuid.uuid4().hex[:8]}"
    names = [f"{role}_optuna", f"{role}_mlflow"]
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PG_PASSWORD}'")
    for name in names:
        admin.cursor().execute(f'CREATE DATABASE "{name}" OWNER {role}')
    yield [f"postgresql://{role}:{PG_PASSWORD}@127.0.0.1:5432/{name}" for name in names]
    for name in names:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.cursor().execute(f"DROP ROLE IF EXISTS {role}")
    admin.close()


def dump_tables(url: str) -> str:
    """Every row of every table of a database, as text."""
    import psycopg2

    database = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)
    cursor = conn.cursor()
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    lines = []
    for (table,) in cursor.fetchall():
        cursor.execute(f'SELECT * FROM "{table}"')
        lines += [f"{table}: {row!r}" for row in cursor.fetchall()]
    conn.close()
    assert lines, f"nothing in {database}"
    return "\n".join(lines)


def files_text(root: Path) -> dict[Path, str]:
    files = [path for path in root.rglob("*") if path.is_file()]
    return {path: path.read_bytes().decode("utf-8", errors="replace") for path in files}


@pytest.mark.timeout(900)  # a server and several sweeps on a shared machine
def test_no_secret_in_anything_a_sweep_writes(secret_databases, tmp_path):
    optuna_url, mlflow_url = secret_databases
    config = {
        "experiment": "exp",
        "sweep_name": "secrets",
        "command": f"python {TRAIN} --api_key ${{SWEEP_TEST_SECRET}} --pin ${{SWEEP_SHORT_COMMAND}}",
        "parameters": {
            "x": [1],
            "y": [10],
            "behave": ["ok", "fail", "oom"],
            "choice": ["${SWEEP_LIST_SECRET}", "plain"],
            "token": "${SWEEP_TEST_SECRET}",
            "short": "${SWEEP_SHORT_SECRET}",
        },
        "optuna_storage": optuna_url,
        "mlflow_storage": mlflow_url,
        "spec": {"direction": "maximize", "metric": "score"},
        "max_retries": 0,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "SWEEP_TEST_SECRET": VAR_SECRET,
        "SWEEP_LIST_SECRET": LIST_SECRET,
        "SWEEP_SHORT_SECRET": "7",
        "SWEEP_SHORT_COMMAND": "ab7",
        "MLFLOW_SWEEPER_DEBUG": "",
    }
    swept = run_cli("sweep", path, cwd=tmp_path, env=env, timeout=600)
    reported = run_cli("report", path, "--log", cwd=tmp_path, env=env, timeout=300)
    status = run_cli("status", path, cwd=tmp_path, env=env, timeout=300)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_url)
    experiment = client.get_experiment_by_name("exp")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]
    assert len(trials) == 6, swept.stderr[-3000:]
    assert sum(r.info.status == "FAILED" for r in trials) == 4  # the failures' logs reach the console
    infeasible = [r for r in trials if "sweeper.infeasible" in r.data.tags]
    assert len(infeasible) == 2 and "out of memory" in infeasible[0].data.tags["sweeper.infeasible"]
    assert {r.data.params["short"] for r in trials} == {"***"}  # however short, from ${VAR}
    assert {r.data.params["choice"] for r in trials} == {"***", "plain"}
    parent = next(r for r in runs if r.data.tags.get("sweeper.role") == "parent")
    assert parent.data.params["optuna_storage"] == optuna_url.replace(PG_PASSWORD, "***")
    assert parent.data.params["parameters.token"] == "***"
    assert parent.data.params["parameters.short"] == "***"

    written = {
        "optuna tables": dump_tables(optuna_url),
        "mlflow tables": dump_tables(mlflow_url),
        "console": "\n".join(r.stdout + r.stderr for r in (swept, reported, status)),
        **{str(p): text for p, text in files_text(tmp_path).items() if p != path},
    }
    assert any("logs" in name for name in written), "no trial log was found"
    assert any(name.endswith("report.html") for name in written), "no report was found"
    assert any(name.endswith("sweep.yaml") and "artifacts" in name.lower() or "mlartifacts" in name
               for name in written), sorted(written)  # fmt: skip
    assert "--api_key ***" in "\n".join(written.values())  # the command line shows, redacted
    assert "'--api_key', '***'" in "\n".join(written.values())  # what the trial printed, scrubbed
    # The header the sweeper writes masks a hidden value however short; what the trial prints is
    # searched for values of 4 characters or more (a "7" could be anything in free text).
    headers = [
        line for text in written.values() for line in text.splitlines() if line.startswith("# command:")
    ]
    assert headers and all("'short=***'" in line and "short=7" not in line for line in headers), headers
    assert all("--pin '***'" in line and "ab7" not in line for line in headers), headers  # in `command`
    for secret in (PG_PASSWORD, VAR_SECRET, LIST_SECRET):
        leaks = [name for name, text in written.items() if secret in text]
        assert not leaks, f"{secret} found in {leaks}"


def test_a_trial_log_is_readable_by_its_owner_only_from_the_start(tmp_path):
    """Until the trial ends and its log is scrubbed, the log may hold hidden values."""
    import os
    import stat
    import sys

    from mlflow_sweeper.launch.process import popen

    log_path = tmp_path / "logs" / "trial-0.log"
    log_path.parent.mkdir()
    log_path.write_text("an earlier attempt's log\n")
    os.chmod(log_path, 0o644)
    argv = [sys.executable, "-c", "print('token')"]
    process, handle = popen(argv, str(tmp_path), dict(os.environ), log_path)
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    process.wait()
    handle.close()
    assert "token" in log_path.read_text()
