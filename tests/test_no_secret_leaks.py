"""No secret leaves the agent: everything a real sweep writes, searched for its secrets.

A password in each storage URL (PostgreSQL roles with real passwords) and values that came
from `${VAR}` (a fixed parameter, a swept list's value, a command argument, one printed by a
trial that runs out of memory): none may appear in either storage's tables, the MLflow
artifacts, the trial logs, the report or the console.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import TRAIN, require_server, run_cli, write_config

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


def test_a_project_from_the_environment_shows_masked_on_its_trial_runs(tmp_path):
    """`project: "${VAR}"` (a git URL with a token, say): its trial runs' source tag shows `***`,
    and an `entry_point` parameter declared a float may take a value from `${VAR}`."""
    import shutil

    from conftest import PROJECT, mlflow_runs

    project = tmp_path / f"project-{VAR_SECRET}"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", "sweeps", "*.db"))
    mlproject = project / "MLproject"
    declared = mlproject.read_text().replace('y: {type: string, default: "0"}', "y: {type: float}")
    mlproject.write_text(declared)
    path = write_config(
        tmp_path / "cfg",
        entry_point="train",
        project="${SWEEP_PROJECT}",
        parameters={"x": [1, 2], "y": "${SWEEP_Y}"},
    )
    env = {"SWEEP_PROJECT": str(project), "SWEEP_Y": "0.7531"}
    swept = run_cli("sweep", path, cwd=tmp_path, env=env, timeout=300)
    assert swept.returncode == 0, swept.stderr[-3000:]
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'cfg' / 'mlflow.db'}")
    trials = [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]
    assert len(trials) == 2 and {r.data.params["y"] for r in trials} == {"***"}
    assert {r.data.tags["mlflow.source.name"] for r in trials} == {"***"}
    recorded = [(k, v) for r in runs for k, v in {**r.data.params, **r.data.tags}.items()]
    leaks = [key for key, value in recorded if VAR_SECRET in value]
    assert not leaks and VAR_SECRET not in swept.stdout + swept.stderr


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


TALKER = """
import pathlib, sys, time
print("con" "necting with", sys.argv[1], "to postgresql://me:" + sys.argv[1] + "@db/x", flush=True)
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.05)
print("aga" "in", sys.argv[1], flush=True)
"""


def _wait_for(path: Path, text: str, timeout: float = 60) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    pytest.fail(f"{text!r} not in {path} within {timeout} s: {content!r}")


@contextlib.contextmanager
def _talking_trial(tmp_path: Path, name: str):
    """A trial started by `popen` that prints a remembered secret, then again once the `with`
    block has run; yields the secret, its log and the log as it read while the trial ran."""
    import os
    import sys

    from mlflow_sweeper.launch.process import kill_tree, popen
    from mlflow_sweeper.secrets import forget_all, remember

    secret, go = f"{name}-{uuid.uuid4().hex[:10]}", tmp_path / "go"
    log_path = tmp_path / "logs" / "trial-0.log"
    remember(secret)
    argv = [sys.executable, "-c", TALKER, secret, str(go)]
    process, output = popen(argv, str(tmp_path), dict(os.environ), log_path)
    try:
        running = _wait_for(log_path, "connecting with")
        assert process.poll() is None, running
        yield secret, log_path, running
        go.touch()
        assert process.wait(timeout=60) == 0
    finally:
        forget_all()
        kill_tree(process.pid)  # a check failed while it waits for `go`: nothing is left running
        output.close()


def test_a_trial_log_never_holds_a_secret_even_while_the_trial_runs(tmp_path):
    """With secrets in the sweep, the trial's output passes a relay that masks them: the log holds
    `***` from the first line the trial prints, not only once it has ended and been scrubbed."""
    with _talking_trial(tmp_path, "Live") as (secret, log_path, running):
        assert secret not in running and "connecting with *** to postgresql://me:***@db/x" in running
    ended = log_path.read_text()
    assert secret not in ended and "again ***" in ended and ended.startswith("# command: ")


def test_without_secrets_a_trial_writes_its_log_itself(tmp_path):
    """No relay when nothing is secret: a local trial costs what the bare command costs."""
    import os
    import sys

    from mlflow_sweeper.launch.process import popen
    from mlflow_sweeper.secrets import remembered

    assert not remembered()
    argv = [sys.executable, "-c", "print('pla' 'in')"]
    process, output = popen(argv, str(tmp_path), dict(os.environ), tmp_path / "t.log")
    assert output.relay is None and output.for_trial is output.log_file
    process.wait(timeout=60)
    output.close()
    assert "plain" in (tmp_path / "t.log").read_text()


def test_a_secret_a_trial_prints_after_its_agent_died_is_masked_in_its_log(tmp_path):
    """The agent killed (-9) while its trial runs on: what the trial prints afterwards reaches the
    log masked all the same (the relay is a process of its own, not the agent's)."""
    import os
    import signal

    import psutil
    from conftest import start_cli

    secret, go = f"Dead-{uuid.uuid4().hex[:10]}", tmp_path / "go"
    (tmp_path / "talker.py").write_text(TALKER)
    path = write_config(
        tmp_path,
        command="python talker.py {note} {go}",
        parameters={"note": "${NOTE}", "go": [str(go)]},
        max_trials=None,
    )
    agent = start_cli("sweep", str(path), cwd=tmp_path, env={"NOTE": secret}, output=tmp_path / "agent.log")
    try:
        log_path = tmp_path / "sweeps" / "logs" / "exp_s1" / "trial-0.log"
        running = _wait_for(log_path, "connecting with", timeout=120)
        assert secret not in running
        trial = [p for p in psutil.Process(agent.pid).children(recursive=True) if "talker.py" in p.cmdline()]
        assert trial, "the trial is not running"
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=30)
        go.touch()
        psutil.wait_procs(trial, timeout=60)
        ended = _wait_for(log_path, "again")
        assert secret not in ended and "again ***" in ended
    finally:
        agent.kill() if agent.poll() is None else None
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if "talker.py" in proc.cmdline():
                    proc.kill()


def test_the_relay_masks_a_secret_split_across_writes_and_passes_long_lines_on(tmp_path, monkeypatch):
    """A line is masked whole, however the trial's writes cut it; a line with no end in sight (a
    progress bar) is written on in parts instead of held for ever."""
    import os
    import threading
    import time

    from mlflow_sweeper import log_relay
    from mlflow_sweeper.secrets import forget_all, remember

    monkeypatch.setattr(log_relay, "LONGEST_HELD", 64)
    secret = f"Split-{uuid.uuid4().hex[:10]}"
    read_end, write_end = os.pipe()
    target = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT, 0o600)
    remember(secret)
    try:
        relaying = threading.Thread(target=log_relay.relay, args=(read_end, target), daemon=True)
        relaying.start()
        os.write(write_end, f"before {secret[:5]}".encode())
        time.sleep(0.2)  # the relay has read the line's first half by now
        os.write(write_end, f"{secret[5:]} after\rbar {secret}\n".encode() + b"=" * 200)
        time.sleep(0.2)
        assert (tmp_path / "log").read_bytes().count(b"=") >= 64  # passed on without its end
        os.write(write_end, f"\n{'-' * 60}{secret}".encode())  # the cut falls inside the secret
        time.sleep(0.2)
    finally:
        os.close(write_end)
        relaying.join(timeout=30)
        forget_all()
        os.close(read_end)
        os.close(target)
    written = (tmp_path / "log").read_bytes()
    assert written == b"before *** after\rbar ***\n" + b"=" * 200 + b"\n" + b"-" * 60 + b"***"


def test_an_agent_taking_over_a_trial_waits_for_its_relay_and_no_project_breaks_it(tmp_path, monkeypatch):
    """The relay holds its log locked while it writes: an agent adopting a dead agent's trial reads
    the log only once it is whole. A project's `json.py` in the agent's folder does not shadow
    the relay's own imports (a relay that failed would kill its trial with SIGPIPE)."""
    from mlflow_sweeper.launch.trial_output import relay_finished

    (tmp_path / "json.py").write_text("raise SystemExit('a project module, not the standard one')\n")
    monkeypatch.chdir(tmp_path)
    with _talking_trial(tmp_path, "Lock") as (secret, log_path, running):
        assert secret not in running
        assert not relay_finished(log_path, timeout=0.3)  # still writing
    assert relay_finished(log_path, timeout=10)
    assert "again ***" in log_path.read_text() and relay_finished(tmp_path / "no-such.log", timeout=0)
