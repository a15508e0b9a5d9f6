"""Resumable trials end to end: a trial that logs a checkpoint per epoch continues from the last
one it logged, through `mlflow_sweeper.resume.restore()`, when its agent was SIGKILLed and another
agent re-runs it, when it failed and is retried, and when the sweep resumes after Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
from conftest import read_records, run_cli, start_cli, write_config

EPOCHS = Path(__file__).resolve().parent / "training" / "epochs.py"


SECRET = "Resum3Secret"  # a parameter from ${RESUME_SECRET}: the trial prints it into its log
SECRET_ENV = {"RESUME_SECRET": SECRET}


def start(config: Path, out: Path):
    return start_cli("sweep", config, cwd=config.parent, output=out, env=SECRET_ENV)


def wait_epoch(record: Path, epoch: int, agent: subprocess.Popen, out: Path, timeout: float = 240) -> dict:
    """The first trial's record once it has logged the checkpoint of `epoch`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [r for r in read_records(record) if r["event"] == "epoch" and r["epoch"] >= epoch]
        if done:
            return done[0]
        assert agent.poll() is None, out.read_text()
        time.sleep(0.1)
    raise AssertionError(f"epoch {epoch} was not reached:\n{out.read_text()}")


def last_epoch(record: Path, pid: int) -> int:
    return max(r["epoch"] for r in read_records(record) if r["event"] == "epoch" and r["pid"] == pid)


def resumed_start(record: Path, first_pid: int) -> dict:
    starts = [r for r in read_records(record) if r["event"] == "start" and r["pid"] != first_pid]
    assert len(starts) == 1, starts
    return starts[0]


def config_for(tmp_path: Path, record: Path, behave: str = "ok", **keys) -> Path:
    return write_config(
        tmp_path,
        command=f"python {EPOCHS}",
        parameters={
            "x": [1],
            "epochs": 8,
            "hold": 0.3,
            "behave": behave,
            "record": str(record),
            "token": "${RESUME_SECRET}",
        },
        **keys,
    )


def test_a_trial_of_a_killed_agent_resumes_from_its_last_checkpoint(tmp_path):
    record, out = tmp_path / "records.jsonl", tmp_path / "a.out"
    config = config_for(tmp_path, record, stale_after=3)
    first = start(config, out)
    running = wait_epoch(record, 2, first, out)
    trial = psutil.Process(running["pid"])
    first.kill()  # the host is lost: the agent and its trial
    first.wait()
    with contextlib.suppress(psutil.NoSuchProcess):
        trial.kill()
    reached = last_epoch(record, running["pid"])
    killed_log = tmp_path / "sweeps" / "logs" / "exp_s1" / "trial-0.log"
    assert SECRET not in killed_log.read_text()  # masked on its way in: the agent dying changes nothing

    result = run_cli("sweep", config, cwd=tmp_path, env=SECRET_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert SECRET not in killed_log.read_text() and "token=***" in killed_log.read_text()
    again = resumed_start(record, running["pid"])
    assert again["start_epoch"] >= reached + 1 > 0
    assert again["resume"] == running["run_id"] and again["attempt"] == "2" and again["trial"] != "0"


def test_a_retried_trial_resumes_from_the_failed_attempts_checkpoint(tmp_path):
    record = tmp_path / "records.jsonl"
    config = config_for(tmp_path, record, behave="fail_at:3")
    result = run_cli("sweep", config, cwd=tmp_path, env=SECRET_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    starts = [r for r in read_records(record) if r["event"] == "start"]
    assert [s["start_epoch"] for s in starts] == [0, 3]
    assert starts[0]["resume"] is None and starts[0]["attempt"] == "1"
    assert starts[1]["resume"] == starts[0]["run_id"] and starts[1]["attempt"] == "2"
    assert starts[1]["restored"] and not os.path.exists(starts[1]["restored"])  # removed as the trial ended
    retried_log = tmp_path / "sweeps" / "logs" / "exp_s1" / f"trial-{starts[1]['trial']}.log"
    assert "Downloading artifacts" not in retried_log.read_text()  # MLflow's bar would crowd the tail


def test_a_sweep_resumed_after_ctrl_c_continues_the_interrupted_trial(tmp_path):
    record, out = tmp_path / "records.jsonl", tmp_path / "a.out"
    config = config_for(tmp_path, record)
    first = start(config, out)
    running = wait_epoch(record, 2, first, out)
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130, out.read_text()
    reached = last_epoch(record, running["pid"])
    assert SECRET not in (tmp_path / "sweeps" / "logs" / "exp_s1" / "trial-0.log").read_text()  # scrubbed

    result = run_cli("sweep", config, cwd=tmp_path, env=SECRET_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    again = resumed_start(record, running["pid"])
    assert again["start_epoch"] >= reached + 1 > 0
    assert again["resume"] == running["run_id"]


def test_restore_of_an_earlier_run_purged_since_is_none(tmp_path, monkeypatch, caplog):
    """`SWEEPER_RESUME_RUN_ID` names a run `mlflow gc` purged since: nothing to restore, and the
    trial starts from scratch instead of failing every attempt, saying why."""
    from conftest import with_empty_mlflow_store

    from mlflow_sweeper.resume import restore

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{with_empty_mlflow_store(tmp_path) / 'mlflow.db'}")
    monkeypatch.setenv("SWEEPER_RESUME_RUN_ID", "0" * 32)
    assert restore("checkpoints", str(tmp_path / "into")) is None
    assert f"the earlier attempt's run {'0' * 32} cannot be read" in caplog.text
    assert "starting afresh" in caplog.text


def test_restore_of_one_file_gives_that_file(tmp_path, monkeypatch):
    """A trial that logged its checkpoint as one file (`log_artifact("ckpt.json", "checkpoints")`)
    restores it by its path: the local file, not None."""
    import mlflow
    from conftest import with_empty_mlflow_store

    from mlflow_sweeper.resume import restore

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{with_empty_mlflow_store(tmp_path) / 'mlflow.db'}")
    checkpoint = tmp_path / "ckpt.json"
    checkpoint.write_text('{"epoch": 3}')
    with mlflow.start_run() as earlier:
        mlflow.log_artifact(str(checkpoint), "checkpoints")
    monkeypatch.setenv("SWEEPER_RESUME_RUN_ID", earlier.info.run_id)
    found = restore("checkpoints/ckpt.json", str(tmp_path / "into"))
    assert found is not None and Path(found).read_text() == '{"epoch": 3}'
    assert Path(restore("checkpoints", str(tmp_path / "whole")), "ckpt.json").is_file()
    assert restore("checkpoints/other.json", str(tmp_path / "none")) is None
