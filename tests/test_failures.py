"""Failure handling , with real agents, real trial processes and real signals.

Retries (a trial failing once, one failing every attempt), dead agents (SIGKILL, on another host
and on this one), Ctrl-C and SIGTERM (exit 130 within 10 s, resume), a second Ctrl-C, trial
timeouts, lock files, and a PostgreSQL restart mid-sweep. Config drift and bad input are tested
elsewhere.

Trials that must stay running until the test lets them go use `behave: block:<path>` (wait until
the file exists, then succeed): the value is part of the sweep's identity, so an interrupted
sweep resumes with the very same config, and the test creates the file before resuming.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from conftest import (
    TRAIN,
    cli_env,
    kill_process_tree,
    mlflow_runs,
    optuna_trials,
    read_records,
    run_cli,
    start_cli,
    start_proxy,
    write_config,
)

GRID = {"x": [1, 2], "y": [10]}
POINTS = [(1, 10), (2, 10)]
# Agent output shown on failure: drop the bodies of library tracebacks (MLflow logs whole ones).
NOISE = re.compile(r"[ \t]|Traceback|The above|During handling|\(Background|\(?psycopg2|sqlalchemy\.")
STAMP = re.compile(r"^[\d/: -]+")


# ---- helpers ---------------------------------------------------------------------------------------


def mlflow_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def optuna_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}"


def trial_runs(uri: str, deleted: bool = True) -> list:
    return [r for r in mlflow_runs(uri, deleted=deleted) if r.data.tags.get("sweeper.role") == "trial"]


def parent_runs(uri: str) -> list:
    return [r for r in mlflow_runs(uri, deleted=True) if r.data.tags.get("sweeper.role") == "parent"]


def point(params: dict) -> tuple:
    return (int(params["x"]), int(params["y"]))


def lock_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.lock"))


class Agents:
    """Agents started in the background, their output in a file; every trial process they
    started is killed at the end of the test whatever happened."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}
        self.records: list[Path] = []
        self.seen: list[psutil.Process] = []

    def start(self, config: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        log = self.tmp_path / f"agent-{len(self.procs)}.out"
        proc = start_cli("sweep", config, *args, cwd=self.tmp_path, output=log, prefix=prefix)
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def output(self, proc: subprocess.Popen) -> str:
        """The agent's output, without the bodies of library tracebacks, repeats collapsed."""
        text = self.logs[proc.pid].read_text(errors="replace")
        kept: list[str] = []
        for line in text.splitlines():
            if not line.strip() or NOISE.match(line):
                continue
            if kept and STAMP.sub("", line) == STAMP.sub("", kept[-1]):  # a repeat, another time
                continue
            kept.append(line)
        return "\n".join(kept)

    def wait_records(self, record: Path, n: int, proc: subprocess.Popen, timeout: float = 150) -> list[dict]:
        """Wait until `n` trial executions have started (the trial wrote its record line)."""
        if record not in self.records:
            self.records.append(record)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = read_records(record)
            if len(records) >= n:
                return records
            if proc.poll() is not None:
                pytest.fail(
                    f"agent exited with {proc.returncode} before {n} trials started:\n{self.output(proc)}"
                )
            time.sleep(0.1)
        pytest.fail(f"{n} trials did not start within {timeout} s:\n{self.output(proc)}")

    def tree(self, proc: subprocess.Popen) -> list[psutil.Process]:
        """The agent's descendants now (trial processes and what they started)."""
        try:
            found = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        self.seen.extend(found)
        return found

    def wait(self, proc: subprocess.Popen, timeout: float = 240) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"agent still running after {timeout} s:\n{self.output(proc)}")

    def trial_processes(self) -> list[psutil.Process]:
        """Live trial processes whose pid a record names (started by any agent of this test)."""
        found = []
        for record in self.records:
            for line in read_records(record):
                proc = _live(line["pid"])
                if proc is not None and str(TRAIN) in " ".join(_cmdline(proc)):
                    found.append(proc)
        return found

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for proc in [*self.seen, *self.trial_processes()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running():
                    proc.kill()


def _live(pid: int) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.NoSuchProcess:
        return None


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def still_alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def wait_gone(procs: list[psutil.Process], timeout: float = 5) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = still_alive(procs)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = still_alive(alive)
    return alive


@pytest.fixture
def agents(tmp_path):
    pool = Agents(tmp_path)
    yield pool
    pool.cleanup()


def assert_settled(mlflow: str, optuna: str, points: list[tuple], parents_finished: bool = True) -> None:
    """After a finished sweep: every point exactly one COMPLETE trial, nothing RUNNING or WAITING
    anywhere (main study, claims ledger, MLflow), exactly one parent, FINISHED."""
    trials = optuna_trials(optuna)
    states = Counter(t.state.name for t in trials)
    assert states["RUNNING"] == 0 and states["WAITING"] == 0, states
    complete = Counter(point(t.params) for t in trials if t.state.name == "COMPLETE")
    assert complete == Counter(points), f"COMPLETE trials per point: {dict(complete)}"
    claims = optuna_trials(optuna, "exp/s1#claims")
    assert not [c.number for c in claims if c.state.name == "RUNNING"], "a claim was left RUNNING"

    runs = mlflow_runs(mlflow, deleted=True)
    assert not [(r.info.run_id, r.data.tags.get("sweeper.role")) for r in runs if r.info.status == "RUNNING"]
    parents = parent_runs(mlflow)
    assert len(parents) == 1
    if parents_finished:
        assert parents[0].info.status == "FINISHED"
    active = trial_runs(mlflow, deleted=False)
    assert sorted(point(r.data.params) for r in active) == sorted(points)
    assert all(r.info.status == "FINISHED" for r in active), [(r.info.run_id, r.info.status) for r in active]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in active)


def assert_replaced(mlflow: str, old_run: str, new_run: str) -> None:
    from mlflow.tracking import MlflowClient

    old = MlflowClient(tracking_uri=mlflow).get_run(old_run)
    assert old.info.lifecycle_stage == "deleted", f"replaced run {old_run} was not soft-deleted"
    assert old.data.tags.get("sweeper.replaced_by") == new_run
    new = MlflowClient(tracking_uri=mlflow).get_run(new_run)
    assert new.info.lifecycle_stage == "active"


# ---- retries ---------------------------------------------------------------------------------------


@pytest.mark.extended  # in-process: tests/test_trial_path.py
def test_trial_failing_once_is_retried_and_failed_run_retired(tmp_path):
    record = tmp_path / "records.jsonl"
    config = write_config(tmp_path, parameters={**GRID, "behave": "fail_once", "record": str(record)})

    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    executions: dict[tuple, list[str]] = {}
    for line in read_records(record):
        executions.setdefault(point(line["params"]), []).append(line["run_id"])
    assert sorted(executions) == POINTS
    assert all(len(runs) == 2 for runs in executions.values()), executions
    for failed, replacement in executions.values():
        assert_replaced(mlflow, failed, replacement)
    statuses = {r.info.run_id: r.info.status for r in trial_runs(mlflow)}
    for failed, replacement in executions.values():
        assert statuses[failed] == "FAILED" and statuses[replacement] == "FINISHED"
    assert_settled(mlflow, optuna, POINTS)
    fails = Counter(point(t.params) for t in optuna_trials(optuna) if t.state.name == "FAIL")
    assert fails == Counter(POINTS)
    assert lock_files(tmp_path) == []


def test_trial_failing_every_attempt_fails_for_good_with_summary(tmp_path):
    record = tmp_path / "records.jsonl"
    config = write_config(
        tmp_path,
        parameters={"x": [1], "y": [10], "behave": ["ok", "fail"], "record": str(record)},
        max_retries=2,
    )

    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path)
    assert result.returncode == 1, result.stderr

    attempts = Counter(line["params"]["behave"] for line in read_records(record))
    assert attempts == {"ok": 1, "fail": 3}  # 1 + max_retries

    optuna, mlflow = optuna_uri(tmp_path), mlflow_uri(tmp_path)
    trials = optuna_trials(optuna)
    assert Counter((t.params["behave"], t.state.name) for t in trials) == {
        ("ok", "COMPLETE"): 1,
        ("fail", "FAIL"): 3,
    }
    last = max((t for t in trials if t.params["behave"] == "fail"), key=lambda t: t.number)
    log = tmp_path / "sweeps" / "logs" / "exp_s1" / f"trial-{last.number}.log"
    assert log.exists()
    summary = result.stderr[result.stderr.find("failed for good:") :]
    assert "failed for good:" in summary, result.stderr
    lines = [line for line in summary.splitlines() if str(log) in line]
    assert lines, f"the summary does not give the log path {log}:\n{result.stderr}"
    assert "'behave': 'fail'" in lines[0] or "behave=fail" in lines[0], lines[0]
    assert "--retry-failed` runs them again" in summary  # and how to run them again

    parents = parent_runs(mlflow)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    runs = trial_runs(mlflow)
    failing = [r for r in runs if r.data.params["behave"] == "fail"]
    assert len(failing) == 3 and all(r.info.status == "FAILED" for r in failing)
    assert [r.info.lifecycle_stage for r in failing].count("active") == 1  # the last attempt stays
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert lock_files(tmp_path) == []


# ---- dead agents -----------------------------------------------------------------------------------


def _other_host_prefix() -> tuple[str, ...]:
    """Run a process as if on another machine: a UTS namespace with its own host name."""
    prefix = ("unshare", "--uts", "sh", "-c", 'hostname sweeper-other-host && exec "$@"', "sh")
    try:
        ok = subprocess.run([*prefix, "hostname"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        ok = None
    if ok is None or ok.returncode != 0 or ok.stdout.strip() != "sweeper-other-host":
        pytest.skip("cannot fake another host (unshare --uts needs CAP_SYS_ADMIN)")
    return prefix


def _kill_agent_mid_trial(
    agents: Agents, config: Path, record: Path, prefix: tuple[str, ...] = (), trials_too: bool = True
) -> list:
    """Start an agent running both points, then SIGKILL it (and its trial processes)."""
    first = agents.start(config, "-j", "2", prefix=prefix)
    records = agents.wait_records(record, 2, first)
    tree = agents.tree(first)
    assert {line["pid"] for line in records} <= {p.pid for p in tree}
    first.kill()  # the agent first, so it cannot record its trials' deaths
    first.wait()
    if trials_too:
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        assert wait_gone(tree) == []
    return records


@pytest.mark.extended
def test_killed_agent_on_another_host_is_reclaimed_after_stale_after(tmp_path, agents):
    """A lost agent (a preempted machine) is no failure of its trials: with no retries allowed,
    their points run again all the same, as the same attempt."""
    prefix = _other_host_prefix()
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path,
        parameters={**GRID, "behave": f"block:{go}", "record": str(record)},
        stale_after=3,
        max_retries=0,
    )
    killed = _kill_agent_mid_trial(agents, config, record, prefix)

    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    assert Counter(t.state.name for t in optuna_trials(optuna)) == {"RUNNING": 2}
    go.touch()
    second = agents.start(config, "-j", "2")
    code = agents.wait(second)
    assert code == 0, agents.output(second)

    assert_settled(mlflow, optuna, POINTS)
    reclaimed = [t for t in optuna_trials(optuna) if t.state.name == "FAIL"]
    assert len(reclaimed) == 2
    assert all("stale_after" in t.user_attrs.get("fail_reason", "") for t in reclaimed), [
        t.user_attrs for t in reclaimed
    ]
    # The dead agent's runs were ended (FAILED or KILLED) and retired in favour of their re-runs.
    new_runs = {point(line["params"]): line["run_id"] for line in read_records(record)[2:]}
    assert sorted(new_runs) == POINTS
    assert {r.data.tags.get("sweeper.attempt") for r in trial_runs(mlflow)} == {"1"}  # nothing failed
    for line in killed:
        assert_replaced(mlflow, line["run_id"], new_runs[point(line["params"])])
    assert {r.info.status for r in trial_runs(mlflow) if r.info.lifecycle_stage == "deleted"} <= {
        "FAILED",
        "KILLED",
    }
    assert lock_files(tmp_path) == []


def _wait_output(agents: Agents, agent: subprocess.Popen, text: str, count: int, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (output := agents.output(agent)).count(text) < count:
        assert agent.poll() is None and time.monotonic() < deadline, output
        time.sleep(0.2)
    return output


def test_a_killed_agents_trials_running_on_here_are_watched_and_their_results_kept(tmp_path, agents):
    """The dead agent's trial processes outlive it (they run in sessions of their own). An agent
    on the same host sees at once that their agent died (no stale_after wait), lets them run on,
    beating for them, and keeps their results when they end: nothing runs twice, nothing of a
    long training run is thrown away."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(tmp_path, parameters={**GRID, "behave": f"block:{go}", "record": str(record)})
    killed = _kill_agent_mid_trial(agents, config, record, trials_too=False)
    orphans = [psutil.Process(line["pid"]) for line in killed]

    started = time.monotonic()
    second = agents.start(config, "-j", "2")
    _wait_output(agents, second, "but its process still runs on this host: watched", 2)
    assert all(orphan.is_running() for orphan in orphans)
    go.touch()
    code = agents.wait(second)
    elapsed = time.monotonic() - started
    text = agents.output(second)
    assert code == 0, text
    assert elapsed < 150, f"took {elapsed:.0f} s: waited for stale_after (300 s)?"

    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    assert_settled(mlflow, optuna, POINTS)
    assert Counter(t.state.name for t in optuna_trials(optuna)) == {"COMPLETE": 2}
    assert len(read_records(record)) == 2, "a point ran again"
    assert {r.info.run_id for r in trial_runs(mlflow)} == {line["run_id"] for line in killed}
    assert text.count("its run had finished: its result is kept") == 2, text
    assert lock_files(tmp_path) == []


def test_the_dead_agents_trials_an_agent_watches_count_toward_its_jobs(tmp_path, agents):
    """`-j 2` is two trials at once, whoever started them: with two of a dead agent's trials
    running on here, watched, the third point starts only once one of them has ended."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(tmp_path, parameters={"x": [1, 2, 3], "y": [10], "behave": f"block:{go}",
                                                "record": str(record)})  # fmt: skip
    _kill_agent_mid_trial(agents, config, record, trials_too=False)
    second = agents.start(config, "-j", "2")
    _wait_output(agents, second, "but its process still runs on this host: watched", 2)
    time.sleep(3)  # a worker free to claim would have started the third point by now
    assert "(point 3 of 3" not in agents.output(second), agents.output(second)  # said as it launches
    assert len(read_records(record)) == 2, agents.output(second)
    go.touch()
    assert agents.wait(second) == 0, agents.output(second)
    assert sorted(line["params"]["x"] for line in read_records(record)) == ["1", "2", "3"]
    assert Counter(t.state.name for t in optuna_trials(optuna_uri(tmp_path))) == {"COMPLETE": 3}


def test_an_agent_with_another_output_dir_finds_the_dead_agents_exit_status(tmp_path, agents):
    """Agents on one host may keep their logs in different `output_dir`s: the trial says where
    its log (and exit status) is."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    keys = {
        "parameters": {**GRID, "behave": f"block:{go}", "record": str(record)},
        "optuna_storage": optuna_uri(tmp_path),
    }
    config = write_config(tmp_path, **keys)
    elsewhere = write_config(tmp_path, "other.yaml", output_dir="./sweeps-b", **keys)
    killed = _kill_agent_mid_trial(agents, config, record, trials_too=False)
    go.touch()
    assert wait_gone([psutil.Process(line["pid"]) for line in killed], timeout=60) == []
    second = agents.start(elsewhere, "-j", "2")
    assert agents.wait(second) == 0, agents.output(second)
    assert len(read_records(record)) == 2, "a point ran again"
    assert agents.output(second).count("its result is kept") == 2, agents.output(second)


def test_a_killed_agents_trial_that_crashed_after_logging_is_failed_not_kept(tmp_path, agents):
    """Its run says FINISHED with its metric (MLflow ends a run its code started so at exit, even
    after an uncaught exception), but its exit status, kept beside its log, says it failed: it
    is failed as its own agent would have failed it, not taken for a result."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path, parameters={**GRID, "behave": f"block_crash:{go}", "record": str(record)}, max_retries=0
    )
    killed = _kill_agent_mid_trial(agents, config, record, trials_too=False)
    orphans = [psutil.Process(line["pid"]) for line in killed]
    go.touch()
    assert wait_gone(orphans, timeout=60) == []
    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    assert {r.info.status for r in trial_runs(mlflow)} == {"FINISHED"}  # what MLflow says

    second = agents.start(config, "-j", "2")
    code = agents.wait(second)
    text = agents.output(second)
    assert code == 1, text  # both points failed for good (max_retries: 0)
    trials = optuna_trials(optuna)
    assert sorted(t.state.name for t in trials) == ["FAIL", "FAIL"]
    assert all("the run failed (exit code 1)" in t.user_attrs["fail_reason"] for t in trials)
    assert {r.info.status for r in trial_runs(mlflow)} == {"FAILED"}
    assert len(read_records(record)) == 2 and "its result is kept" not in text
    assert text.count("last lines of") == 2, text  # its log's tail, as its own agent shows it


def test_an_agent_leaving_stops_the_trials_it_watched_and_requeues_them_as_interrupted(tmp_path, agents):
    """Left running unwatched, a dead agent's trial would be reclaimed on another host after
    `stale_after`, and run again beside itself: the watching agent, stopped, stops it too."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path, parameters={**GRID, "behave": f"block:{go}", "record": str(record)}, max_retries=0
    )
    killed = _kill_agent_mid_trial(agents, config, record, trials_too=False)
    orphans = [psutil.Process(line["pid"]) for line in killed]
    second = agents.start(config, "-j", "2")
    _wait_output(agents, second, "but its process still runs on this host: watched", 2)
    second.send_signal(signal.SIGINT)
    assert agents.wait(second, timeout=60) == 130, agents.output(second)
    assert wait_gone(orphans, timeout=30) == [], "the watched trials run on unwatched"
    trials = optuna_trials(optuna_uri(tmp_path))
    failed = [t for t in trials if t.state.name == "FAIL"]
    reasons = [t.user_attrs["fail_reason"] for t in failed]
    assert len(failed) == 2 and all("the agent watching it stopped" in reason for reason in reasons)
    waiting = [t for t in trials if t.state.name == "WAITING"]
    assert sorted(point(t.params) for t in waiting) == POINTS  # the same attempt, though no retry is left
    assert all(t.system_attrs["sweeper:attempt"] == 1 for t in waiting), [t.system_attrs for t in waiting]
    runs = {r.info.run_id: r.info.status for r in trial_runs(mlflow_uri(tmp_path))}
    assert {runs[line["run_id"]] for line in killed} == {"KILLED"}  # cancelled, as its own trials are


@pytest.mark.extended  # watching: the test above; trial_timeout: tests/test_trial_path.py
def test_a_watched_trial_past_its_timeout_is_stopped_and_run_again(tmp_path, agents):
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path,
        parameters={**GRID, "behave": f"block:{go}", "record": str(record)},
        trial_timeout=20,  # time enough for a re-run to import MLflow on a busy machine
        stale_after=4,  # a maintenance pass every second
        max_retries=3,  # a re-run started before the test lets the trials go times out too
        fail_fast=0,
    )
    killed = _kill_agent_mid_trial(agents, config, record, trials_too=False)
    orphans = [psutil.Process(line["pid"]) for line in killed]
    second = agents.start(config, "-j", "2")
    _wait_output(agents, second, "past trial_timeout (20 s); re-queued; stopping its processes", 2)
    assert wait_gone(orphans, timeout=30) == []
    go.touch()  # the re-runs succeed
    code = agents.wait(second)
    assert code == 0, agents.output(second)

    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    assert_settled(mlflow, optuna, POINTS)
    reasons = [t.user_attrs["fail_reason"] for t in optuna_trials(optuna) if t.state.name == "FAIL"]
    assert sum("on this host, past trial_timeout (20 s)" in reason for reason in reasons) == 2, reasons
    assert all("trial_timeout" in reason for reason in reasons), reasons


def test_a_killed_agents_trials_that_finished_meanwhile_are_adopted_not_run_again(tmp_path, agents):
    """SIGKILL leaves the agent's trials running (sessions of their own). Those that end well
    before another agent reclaims them have FINISHED runs holding their metric, though Optuna was
    never told: the next agent keeps those results instead of running the points again."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(tmp_path, parameters={**GRID, "behave": f"block:{go}", "record": str(record)})
    killed = _kill_agent_mid_trial(agents, config, record, trials_too=False)
    orphans = [psutil.Process(line["pid"]) for line in killed]
    go.touch()
    assert wait_gone(orphans, timeout=60) == []

    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    assert Counter(t.state.name for t in optuna_trials(optuna)) == {"RUNNING": 2}
    status = run_cli("status", config, cwd=tmp_path)
    assert "2 running (2 whose agent is gone: the next agent takes them over)" in status.stdout, (
        status.stdout + status.stderr
    )
    second = agents.start(config, "-j", "2")
    code = agents.wait(second)
    text = agents.output(second)
    assert code == 0, text

    assert_settled(mlflow, optuna, POINTS)
    assert len(read_records(record)) == 2, "a point ran again"
    trials = optuna_trials(optuna)
    assert sorted((t.state.name, t.value) for t in trials) == [("COMPLETE", 11.0), ("COMPLETE", 12.0)]
    assert {r.info.run_id for r in trial_runs(mlflow)} == {line["run_id"] for line in killed}
    assert text.count("its run had finished: its result is kept") == 2, text
    (parent,) = parent_runs(mlflow)
    assert parent.data.metrics["score"] == 12.0  # the best of the adopted results is on the parent
    assert lock_files(tmp_path) == []


@pytest.mark.extended
def test_a_sweep_deleted_while_its_agent_runs_stops_the_agent_with_one_message(tmp_path, agents):
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path, parameters={"x": [1, 2, 3], "y": [10], "behave": f"block:{go}", "record": str(record)}
    )
    agent = agents.start(config, "-j", "2")
    agents.wait_records(record, 2, agent)
    deleted = run_cli("delete", config, "--yes", cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    go.touch()
    code = agents.wait(agent)
    text = agents.output(agent)
    assert code == 1, text
    assert "the sweep was deleted while this agent ran it; stopping this agent" in text, text
    assert "Traceback" not in text, text


def test_a_ledger_deleted_while_its_agent_runs_stops_the_agent_with_one_message(tmp_path, agents):
    """`exp/s1#claims` deleted by hand (optuna-dashboard's delete button) mid-sweep: the agent
    stops with exit 1 and one message naming it, not a traceback."""
    import optuna

    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path, parameters={"x": [1, 2, 3], "y": [10], "behave": f"block:{go}", "record": str(record)}
    )
    agent = agents.start(config, "-j", "2")
    agents.wait_records(record, 2, agent)
    optuna.delete_study(study_name="exp/s1#claims", storage=optuna_uri(tmp_path))
    go.touch()
    code = agents.wait(agent)
    text = agents.output(agent)
    assert code == 1, text
    assert "companion study 'exp/s1#claims'" in text and "was deleted while this agent ran it" in text, text
    assert "mlflow-sweeper delete" in text, text
    assert "Traceback" not in text, text


@pytest.mark.extended
def test_live_agent_keeps_its_trial_when_another_agent_has_a_shorter_stale_after(tmp_path, agents):
    """stale_after may differ between agents of one sweep (it may change on resume): an agent with
    a short one must not take for dead a live agent that beats at the pace of its longer one."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    parameters = {"x": [1], "y": [10], "behave": f"block:{go}", "record": str(record)}
    patient = write_config(tmp_path, "patient.yaml", parameters=parameters)  # stale_after 300
    hasty = write_config(tmp_path, "hasty.yaml", parameters=parameters, stale_after=3)
    first = agents.start(patient)
    agents.wait_records(record, 1, first)
    second = agents.start(hasty)
    deadline = time.monotonic() + 120
    while "in the budget" not in agents.output(second):
        if second.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the second agent did not get going:\n{agents.output(second)}")
        time.sleep(0.2)
    time.sleep(6)  # two stale_after periods of the second agent, while the first one is alive

    optuna = optuna_uri(tmp_path)
    states = Counter(t.state.name for t in optuna_trials(optuna))
    assert states == {"RUNNING": 1}, (states, agents.output(second))
    assert len(read_records(record)) == 1, "the point was started again while its first run was alive"
    go.touch()
    assert agents.wait(first) == 0, agents.output(first)
    assert agents.wait(second) == 0, agents.output(second)
    assert_settled(mlflow_uri(tmp_path), optuna, [(1, 10)])
    assert len(read_records(record)) == 1


# ---- Ctrl-C and SIGTERM ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "times"),
    [(signal.SIGINT, 1), (signal.SIGINT, 2), pytest.param(signal.SIGTERM, 1, marks=pytest.mark.extended)],
    ids=["SIGINT", "SIGINT-delivered-twice", "SIGTERM"],
)
def test_interrupt_cancels_trials_and_resume_completes_every_point(tmp_path, agents, signum, times):
    """`times` 2: one Ctrl-C delivered twice at once (as GNU `timeout` does), not a second Ctrl-C:
    still the clean cancel, whose points are queued again without using an attempt."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    # A shell that stays the trial's parent, so each trial is a process tree (bash -> python).
    inner = f'python {TRAIN} "$@"; exit $?'
    command = f"bash -c {shlex.quote(inner)} trial"
    config = write_config(
        tmp_path,
        command=command,
        parameters={**GRID, "behave": f"block:{go}", "record": str(record)},
        max_retries=0,  # an interrupted trial must not use up an attempt
    )
    agent = agents.start(config, "-j", "2")
    agents.wait_records(record, 2, agent)
    tree = agents.tree(agent)
    assert len(tree) >= 4, [_cmdline(p) for p in tree]  # two trials, each bash + python

    sent = time.monotonic()
    for _ in range(times):
        agent.send_signal(signum)
        time.sleep(0.05)
    try:
        code = agent.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the agent did not exit within 60 s of {signum.name}:\n{agents.output(agent)}")
    elapsed = time.monotonic() - sent
    output = agents.output(agent)
    assert code == 130, output
    assert elapsed <= 10, f"exited {elapsed:.1f} s after {signum.name}"
    assert still_alive(tree) == [], [_cmdline(p) for p in still_alive(tree)]

    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    runs = trial_runs(mlflow)
    assert len(runs) == 2 and all(r.info.status == "KILLED" for r in runs), [r.info.status for r in runs]
    parents = parent_runs(mlflow)
    assert len(parents) == 1 and parents[0].info.status != "FINISHED"
    trials = optuna_trials(optuna)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    assert sorted(point(t.params) for t in trials if t.state.name == "WAITING") == POINTS
    assert not [c for c in optuna_trials(optuna, "exp/s1#claims") if c.state.name == "RUNNING"]
    assert lock_files(tmp_path) == []
    if signum != signal.SIGINT or times > 1:
        return  # the same path from here on; resuming once is enough for the time spent

    go.touch()
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed = read_records(record)[2:]
    assert sorted(point(line["params"]) for line in resumed) == POINTS  # each point once more, no more
    assert_settled(mlflow, optuna, POINTS)
    killed = {point(r.data.params): r.info.run_id for r in runs}
    for line in resumed:
        assert_replaced(mlflow, killed[point(line["params"])], line["run_id"])
    assert lock_files(tmp_path) == []


def _agent_in_a_terminal(config: Path, cwd: Path) -> tuple[subprocess.Popen, int, bytearray]:
    """An agent whose controlling terminal is a pseudo-terminal, as in an ssh session: closing the
    returned master end hangs the terminal up (the kernel sends the agent SIGHUP). What the agent
    writes to it is read off as it comes, as a terminal would."""
    import fcntl
    import pty
    import termios
    import threading

    from conftest import cli_env
    from forked_cli import command

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        command(("sweep", config, "-j", "2")), cwd=cwd, env=cli_env(),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    shown = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                shown.extend(chunk)

    threading.Thread(target=read, daemon=True).start()
    return proc, master, shown


def test_a_closed_terminal_stops_the_agent_as_ctrl_c_does(tmp_path, agents):
    """The terminal is closed (an ssh session lost): the agent cancels its trials, which would
    otherwise run on without it in their own sessions, and their points wait for the resume."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(tmp_path, parameters={**GRID, "behave": f"block:{go}", "record": str(record)})
    agent, terminal, shown = _agent_in_a_terminal(config, tmp_path)
    try:
        deadline = time.monotonic() + 150
        while len(read_records(record)) < 2:
            assert agent.poll() is None and time.monotonic() < deadline, shown.decode(errors="replace")
            time.sleep(0.1)
        trials = [psutil.Process(line["pid"]) for line in read_records(record)]
    finally:
        os.close(terminal)  # the hang-up
    try:
        code = agent.wait(timeout=60)
    except subprocess.TimeoutExpired:
        agent.kill()
        pytest.fail(f"the agent did not exit within 60 s of the hang-up:\n{shown.decode(errors='replace')}")
    assert code == 130, shown.decode(errors="replace")
    assert wait_gone(trials) == [], "its trials run on without it"

    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    assert {r.info.status for r in trial_runs(mlflow)} == {"KILLED"}
    states = sorted((point(t.params), t.state.name) for t in optuna_trials(optuna))
    assert [state for _, state in states if state != "FAIL"] == ["WAITING", "WAITING"], states
    assert lock_files(tmp_path) == []


def test_an_agent_started_with_nohup_runs_on_after_a_hang_up(tmp_path, agents):
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(tmp_path, parameters={**GRID, "behave": f"block:{go}", "record": str(record)})
    agent = agents.start(config, "-j", "2", prefix=("nohup",))
    agents.wait_records(record, 2, agent)
    agent.send_signal(signal.SIGHUP)
    time.sleep(2)
    assert agent.poll() is None, agents.output(agent)
    go.touch()
    assert agents.wait(agent) == 0, agents.output(agent)
    assert_settled(mlflow_uri(tmp_path), optuna_uri(tmp_path), POINTS)
    assert len(read_records(record)) == 2


def test_second_interrupt_exits_at_once(tmp_path, agents):
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    # The trial ignores SIGTERM: cancelling it takes the launcher's grace period before SIGKILL,
    # so a prompt exit after the second Ctrl-C shows the agent did not wait for it.
    config = write_config(
        tmp_path,
        parameters={"x": [1], "y": [10], "behave": f"stubborn:{go}", "record": str(record)},
        stale_after=3,
        max_retries=0,  # quitting at once must not use up the point's one attempt
    )
    agent = agents.start(config)
    agents.wait_records(record, 1, agent)
    agents.tree(agent)

    agent.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert agent.poll() is None, "the first Ctrl-C should wait for the stubborn trial to be killed"
    sent = time.monotonic()
    agent.send_signal(signal.SIGINT)
    try:
        code = agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the agent ignored a second Ctrl-C:\n{agents.output(agent)}")
    elapsed = time.monotonic() - sent
    assert code == 130, agents.output(agent)
    assert elapsed < 3, f"exited {elapsed:.1f} s after the second Ctrl-C"

    # Its trial is stopped too (it ignores SIGTERM; the first Ctrl-C's SIGTERM had killed the
    # wrapper that leads its session): left running, it ran beside the next agent's re-run.
    deadline = time.monotonic() + 10
    while agents.trial_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agents.trial_processes() == [], "the second Ctrl-C left its trial running"
    # Nothing is lost: the next run finishes the sweep.
    go.touch()
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "reclaimed: interrupted (Ctrl-C twice)" in result.stderr, result.stderr
    assert_settled(mlflow_uri(tmp_path), optuna_uri(tmp_path), [(1, 10)])
    assert lock_files(tmp_path) == []


# ---- trial timeout ---------------------------------------------------------------------------------


def test_trial_timeout_stops_trial_and_counts_as_failure(tmp_path, agents):
    max_retries = 1  # the timed-out attempt counts: one retry, then failed for good (exit 1)
    record = tmp_path / "records.jsonl"
    config = write_config(
        tmp_path,
        parameters={"x": [1], "y": [10], "behave": "hang", "record": str(record)},
        trial_timeout=2,
        max_retries=max_retries,
    )
    agent = agents.start(config)
    agents.wait_records(record, 1, agent)
    code = agents.wait(agent, timeout=150)
    output = agents.output(agent)
    assert code == 1, output
    assert "timed out" in output

    records = read_records(record)
    assert len(records) == 1 + max_retries
    for line in records:
        assert _live(line["pid"]) is None, f"trial process {line['pid']} outlived its timeout"
    mlflow, optuna = mlflow_uri(tmp_path), optuna_uri(tmp_path)
    runs = trial_runs(mlflow)
    assert len(runs) == 1 + max_retries
    assert all(r.info.status == "KILLED" for r in runs), [r.info.status for r in runs]
    trials = optuna_trials(optuna)
    assert [t.state.name for t in trials] == ["FAIL"] * (1 + max_retries)
    assert all("trial_timeout" in t.user_attrs.get("fail_reason", "") for t in trials)
    parents = parent_runs(mlflow)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # failed for good has ended
    assert lock_files(tmp_path) == []


# ---- locks -----------------------------------------------------------------------------------------

HOLD_LOCKS = """
import sys, time
from filelock import FileLock
locks = [FileLock(path) for path in sys.argv[1:]]
for lock in locks:
    lock.acquire()
print("held", flush=True)
time.sleep(3600)
"""


@pytest.mark.extended
def test_lock_left_by_dead_process_does_not_block_and_no_lock_remains(tmp_path):
    (tmp_path / "sweeps").mkdir()
    stale = [tmp_path / ".mlflow.db.create.lock", tmp_path / "sweeps" / ".optuna.db.create.lock"]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCKS, *map(str, stale)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
    finally:
        holder.kill()  # dies holding the locks: the files stay behind
        holder.wait()
        holder.stdout.close()
    assert all(path.exists() for path in stale)

    config = write_config(tmp_path, parameters={"x": [1], "y": [10]})
    # A lock that blocked would make the agent wait for its lock timeout (120 s), then fail.
    result = run_cli("sweep", config, cwd=tmp_path, timeout=100)
    assert result.returncode == 0, result.stderr
    assert lock_files(tmp_path) == []


# ---- a database server restarted mid-sweep ---------------------------------------------------------


def _agent_running_three_trials(agents: Agents, config: Path, executed: Callable[[], list]):
    """An agent started with -j 4 on a three-point sweep, once its three trials have started."""
    agent = agents.start(config, "-j", "4")
    deadline = time.monotonic() + 200
    while len(executed()) < 3:
        if agent.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the first trials did not start:\n{agents.output(agent)}")
        time.sleep(0.1)
    return agent


@pytest.mark.server
def test_postgres_restart_mid_sweep_loses_no_trial(tmp_path, agents, private_postgres):
    """Optuna and MLflow on PostgreSQL (two databases on a server of the test's own, so the restart
    disturbs no other test). The server goes down while trials run and
    stays down while they end: the agent's calls (ending runs, telling Optuna, heartbeats, and an
    idle worker polling for work, since -j exceeds the points) must ride out the restart, and each
    point runs exactly once. The trials never touch the database themselves (a shell that records
    its point and sleeps), so any failure is the agent's."""
    record = tmp_path / "points.txt"
    # psycopg2 named explicitly: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which the
    # [postgres] extra does not install (reported separately); this test is about the restart.
    optuna, mlflow = (
        private_postgres.database(name).replace("postgresql://", "postgresql+psycopg2://")
        for name in ("optuna", "mlflow")
    )
    points = [(1, 10), (2, 10), (3, 10)]
    script = 'echo "$*" >> ' + shlex.quote(str(record)) + "; sleep 2"
    config = write_config(
        tmp_path,
        command=f"bash -c {shlex.quote(script)} trial",
        parameters={"x": [1, 2, 3], "y": [10]},
        spec=None,  # the trial succeeds by exiting 0
        optuna_storage=optuna,
        mlflow_storage=mlflow,
        stale_after=5,  # a trial the agent lost track of would be re-run soon, and show up twice
    )

    def executed() -> list[tuple]:
        lines = record.read_text().splitlines() if record.exists() else []
        return [point(dict(item.split("=", 1) for item in line.split())) for line in lines]

    agent = _agent_running_three_trials(agents, config, executed)
    running = agents.tree(agent)
    # A restart whose downtime spans the end of the running trials: stop, let them end, start.
    private_postgres.stop()
    assert wait_gone(running, timeout=30) == []
    time.sleep(1)  # meanwhile the agent ends those trials against a server that is down
    private_postgres.start()
    assert agent.poll() is None, f"the agent ended during the restart:\n{agents.output(agent)}"
    code = agents.wait(agent, timeout=240)
    assert code == 0, agents.output(agent)

    assert sorted(executed()) == points, agents.output(agent)  # every point once, none twice
    assert_settled(mlflow, optuna, points)
    assert [t.state.name for t in optuna_trials(optuna)] == ["COMPLETE"] * 3


@pytest.mark.extended
def test_claim_abandoned_by_a_dead_agent_is_released_and_its_point_runs_once(tmp_path):
    """An agent killed between claiming a slot and creating its trial leaves a RUNNING claim;
    the next agent must release it, run that point exactly once, and finish the sweep."""
    import datetime as dt

    import optuna
    from optuna.trial import TrialState, create_trial

    record = tmp_path / "records.jsonl"
    config = write_config(tmp_path, parameters={"x": [1, 2, 3], "y": [10], "record": str(record)})
    first = run_cli("sweep", config, "--count", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    url = f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}"
    storage = optuna.storages.RDBStorage(url)
    claims = storage.get_study_id_from_name("exp/s1#claims")
    abandoned = create_trial(state=TrialState.COMPLETE, value=0.0)
    abandoned.state = TrialState.RUNNING
    abandoned.values = None
    abandoned.datetime_start = dt.datetime.now() - dt.timedelta(hours=1)
    abandoned.datetime_complete = None
    storage.create_new_trial(claims, template_trial=abandoned)  # slot 1: claimed, never created
    storage.engine.dispose()

    second = run_cli("sweep", config, cwd=tmp_path, timeout=180)
    assert second.returncode == 0, second.stderr
    assert "released" in second.stderr
    points = sorted(r["params"]["x"] for r in read_records(record))
    assert points == ["1", "2", "3"]
    trials = optuna_trials(url)
    assert sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE) == [1, 2, 3]
    assert all(t.state != TrialState.RUNNING for t in optuna_trials(url, "exp/s1#claims"))


@pytest.mark.server
def test_a_grpc_proxy_restarted_mid_sweep_loses_no_trial(tmp_path, agents, postgres_db):
    """The agents' gRPC proxy goes down for 10 s while trials run and end (a proxy restarting on a
    loaded machine takes that long): the agent rides it out, and each point runs exactly once.
    (It gave up after some 6 s: exit 1, and results that had finished were run again.)"""
    record = tmp_path / "points.txt"
    proxy, url = start_proxy(postgres_db(), tmp_path / "proxy.log")
    script = 'echo "$*" >> ' + shlex.quote(str(record)) + "; sleep 2"
    config = write_config(
        tmp_path, command=f"bash -c {shlex.quote(script)} trial", parameters={"x": [1, 2, 3], "y": [10]},
        spec=None, optuna_storage=url, stale_after=60,
    )  # fmt: skip

    def executed() -> list[str]:
        return record.read_text().splitlines() if record.exists() else []

    agent = _agent_running_three_trials(agents, config, executed)
    command = proxy.args
    kill_process_tree(proxy)
    time.sleep(10)  # the trials end meanwhile
    log_path = tmp_path / "proxy-again.log"
    for _ in range(60):  # on the same port, once the old proxy's workers have let it go
        with open(log_path, "wb") as log:
            again = subprocess.Popen(command, env=cli_env(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            again.wait(timeout=5)
        except subprocess.TimeoutExpired:
            break  # serving
        assert "port is in use" in log_path.read_text(), log_path.read_text()
        time.sleep(0.5)
    try:
        assert agents.wait(agent, timeout=240) == 0, agents.output(agent)
    finally:
        kill_process_tree(again)
    assert sorted(executed()) == [f"x={x} y=10" for x in (1, 2, 3)]


@pytest.mark.server
def test_ctrl_c_while_the_grpc_proxy_is_down_exits_within_seconds(tmp_path, agents, postgres_db):
    """Storage outages are waited out for about a minute, but not by an agent told to stop: it
    leaves at once, exit 130, its trials left to a resume. (It took five minutes.)"""
    record = tmp_path / "points.txt"
    proxy, url = start_proxy(postgres_db(), tmp_path / "proxy.log")
    script = 'echo "$*" >> ' + shlex.quote(str(record)) + "; sleep 60"
    config = write_config(
        tmp_path, command=f"bash -c {shlex.quote(script)} trial", parameters={"x": [1, 2, 3], "y": [10]},
        spec=None, optuna_storage=url,
    )  # fmt: skip
    agent = _agent_running_three_trials(
        agents, config, lambda: record.read_text().splitlines() if record.exists() else []
    )
    kill_process_tree(proxy)
    time.sleep(2)
    agent.send_signal(signal.SIGINT)
    assert agents.wait(agent, timeout=60) == 130, agents.output(agent)
