"""Devices end to end: each local trial gets its own devices through the environment, no two
running trials on one host share one (across agents), and an agent killed while holding devices
leaves them usable. No GPU needed: a fake `nvidia-smi` on PATH lists four. The trials only hold
their devices (`training/hold.py`, no MLflow import, sweeps without `spec`): what a trial logs is
not what these tests are about (test_resume and test_triage run the training loop)."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest
from conftest import cli_env, mlflow_runs, optuna_trials, read_records, start_cli, write_config

HOLD = Path(__file__).resolve().parent / "training" / "hold.py"


def fake_gpus(tmp_path: Path, count: int = 4) -> dict[str, str]:
    """An environment whose `nvidia-smi -L` lists `count` GPUs, with its own device locks."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "nvidia-smi"
    lines = "\n".join(f"GPU {i}: Fake GPU (UUID: GPU-fake-{i})" for i in range(count))
    tool.write_text(f"#!/bin/sh\ncat <<'END'\n{lines}\nEND\n")
    tool.chmod(0o755)
    env = cli_env({"SWEEPER_DEVICE_LOCK_DIR": str(tmp_path / "device-locks")})
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def start(config: Path, env: dict, *args: str, out: Path):
    return start_cli("sweep", config, *args, cwd=config.parent, env=env, whole_env=True, output=out)


def intervals(record: Path) -> list[dict]:
    """One entry per trial execution that ended: its devices, start and end time."""
    lines = read_records(record)
    starts = {line["pid"]: line for line in lines if line["event"] == "start"}
    return [
        {
            "devices": starts[line["pid"]]["devices"],
            "start": starts[line["pid"]]["time"],
            "end": line["time"],
            "run_id": line["run_id"],
        }
        for line in lines
        if line["event"] == "end"
    ]


def overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def assert_never_shared(runs: list[dict]) -> None:
    for a, b in itertools.combinations(runs, 2):
        if overlap(a, b):
            shared = set(a["devices"].split(",")) & set(b["devices"].split(","))
            assert not shared, f"two running trials shared device(s) {shared}: {a} {b}"


def most_at_once(runs: list[dict]) -> int:
    return max(sum(1 for r in runs if r["start"] <= t < r["end"]) for t in (r["start"] for r in runs))


def config_for(tmp_path: Path, record: Path, points: int, **keys) -> Path:
    return write_config(
        tmp_path,
        command=f"python {HOLD}",
        parameters={"x": list(range(points)), "hold": 0.4, "record": str(record)},
        spec=None,
        **{"devices": "auto", **keys},
    )


def test_four_devices_twelve_trials_never_share_a_device_and_j_is_capped(tmp_path):
    record = tmp_path / "records.jsonl"
    config = config_for(tmp_path, record, 12)
    env = fake_gpus(tmp_path)
    agent = start(config, env, "-j", "6", out=tmp_path / "agent.out")
    code = agent.wait(timeout=300)
    output = (tmp_path / "agent.out").read_text()
    assert code == 0, output
    assert "-j 6 capped to 4" in output

    runs = intervals(record)
    assert len(runs) == 12
    assert {r["devices"] for r in runs} <= {"0", "1", "2", "3"}
    assert_never_shared(runs)
    assert most_at_once(runs) <= 4
    trial_runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = {r.info.run_id: r.data.tags.get("sweeper.devices") for r in trial_runs}
    for run in runs:
        assert tags[run["run_id"]] == run["devices"]


@pytest.mark.extended  # the cap on -j: test_four_devices_twelve_trials...; the rule: test_device_rules.py
def test_without_j_an_agent_runs_one_trial_per_device_group(tmp_path):
    record = tmp_path / "records.jsonl"
    config = config_for(tmp_path, record, 4, devices_per_trial=2)
    agent = start(config, fake_gpus(tmp_path), out=tmp_path / "agent.out")
    code = agent.wait(timeout=300)
    output = (tmp_path / "agent.out").read_text()
    assert code == 0, output
    assert "up to 2 at once" in output
    runs = intervals(record)
    assert len(runs) == 4 and all(len(r["devices"].split(",")) == 2 for r in runs)
    assert_never_shared(runs)


@pytest.mark.timeout(600)  # two agents' start-up on a busy machine
def test_two_agents_on_one_host_share_four_devices_without_sharing_one(tmp_path):
    record = tmp_path / "records.jsonl"
    config = config_for(tmp_path, record, 10)
    env = fake_gpus(tmp_path)
    first = start(config, env, "-j", "4", out=tmp_path / "a.out")
    second = start(config, env, "-j", "4", out=tmp_path / "b.out")
    assert first.wait(timeout=280) == 0, (tmp_path / "a.out").read_text()
    assert second.wait(timeout=280) == 0, (tmp_path / "b.out").read_text()
    runs = intervals(record)
    assert len(runs) == 10
    assert_never_shared(runs)
    assert most_at_once(runs) <= 4


def wait_for_a_trial(agent, record: Path, out: Path) -> None:
    """Until the agent's first trial has started (it records itself)."""
    deadline = time.monotonic() + 120
    while not read_records(record):
        assert agent.poll() is None, out.read_text()
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.1)


def test_a_killed_agent_leaves_its_devices_usable(tmp_path):
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path,
        command=f"python {HOLD}",
        parameters={"x": [1, 2], "behave": f"block:{go}", "record": str(record)},
        spec=None,
        devices=[0],
        stale_after=2,
    )
    env = fake_gpus(tmp_path)
    first = start(config, env, out=tmp_path / "a.out")
    wait_for_a_trial(first, record, tmp_path / "a.out")
    killed = read_records(record)[0]
    assert killed["devices"] == "0"
    first.kill()
    first.wait()
    go.touch()
    second = start(config, env, out=tmp_path / "b.out")
    code = second.wait(timeout=300)
    assert code == 0, (tmp_path / "b.out").read_text()
    ends = [r for r in read_records(record) if r["event"] == "end"]
    # the killed agent's trial ran on to its end, and its result was kept: it did not run again
    assert sorted(r["x"] for r in ends) == ["1", "2"] and all(r["devices"] == "0" for r in ends)


def test_a_killed_agents_trial_running_on_keeps_its_device_and_its_result(tmp_path):
    """The trial a killed agent left running still holds its device, and runs on, watched by the
    agent that takes over: nothing else starts on that device meanwhile, and its result (here, a
    sweep without `spec`: its exit status) is kept when it ends."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    config = write_config(
        tmp_path,
        command=f"python {HOLD}",
        parameters={"x": [1], "behave": f"block:{go}", "record": str(record)},
        spec=None,
        devices=[0],
    )
    env = fake_gpus(tmp_path)
    first = start(config, env, out=tmp_path / "a.out")
    wait_for_a_trial(first, record, tmp_path / "a.out")
    first.kill()
    first.wait()
    second = start(config, env, out=tmp_path / "b.out")
    deadline = time.monotonic() + 120
    while "but its process still runs on this host: watched" not in (tmp_path / "b.out").read_text():
        assert second.poll() is None and time.monotonic() < deadline, (tmp_path / "b.out").read_text()
        time.sleep(0.1)
    time.sleep(2)
    assert sum(r["event"] == "start" for r in read_records(record)) == 1
    go.touch()
    assert second.wait(timeout=300) == 0, (tmp_path / "b.out").read_text()
    runs = intervals(record)
    assert len(runs) == 1 and runs[0]["devices"] == "0"
    assert "its result is kept" in (tmp_path / "b.out").read_text()


def one_device_taken(tmp_path: Path):
    """Device 0, held by the trial of a first sweep's agent until the file `go` exists; and the
    config of another sweep on the same device."""
    record, go = tmp_path / "records.jsonl", tmp_path / "go"
    env = fake_gpus(tmp_path)
    keys = {"command": f"python {HOLD}", "spec": None, "devices": [0]}
    first_config = write_config(
        tmp_path / "a", parameters={"x": [1], "behave": f"block:{go}", "record": str(record)}, **keys
    )
    other_config = write_config(tmp_path / "b", parameters={"x": [2], "record": str(record)}, **keys)
    first = start(first_config, env, out=tmp_path / "a.out")
    wait_for_a_trial(first, record, tmp_path / "a.out")
    return record, go, env, first, other_config


def test_a_trial_its_killed_agent_left_running_keeps_its_device_from_other_sweeps(tmp_path):
    """The trial inherits its device locks: while it runs on, an agent of another sweep on the
    host waits for the device instead of sharing it."""
    record, go, env, first, other_config = one_device_taken(tmp_path)
    first.kill()
    first.wait()
    other = start(other_config, env, out=tmp_path / "b.out")
    time.sleep(8)  # time enough for the other agent to start its trial, were the device free
    assert [r["x"] for r in read_records(record) if r["event"] == "start"] == ["1"]
    go.touch()  # the orphaned trial ends, and the device with it
    assert other.wait(timeout=300) == 0, (tmp_path / "b.out").read_text()
    runs = intervals(record)
    assert sorted(r["x"] for r in read_records(record) if r["event"] == "end") == ["1", "2"]
    assert_never_shared(runs)


def test_an_agent_waiting_for_a_device_holds_no_point(tmp_path):
    """It takes its device first and claims a point after, so `status` shows nothing running."""
    record, go, env, first, other_config = one_device_taken(tmp_path)
    other = start(other_config, env, out=tmp_path / "b.out")
    time.sleep(8)  # the other agent is up and waiting for device 0
    assert other.poll() is None, (tmp_path / "b.out").read_text()
    waiting = optuna_trials(f"sqlite:///{tmp_path / 'b' / 'sweeps' / 'optuna.db'}")
    assert [t.state.name for t in waiting] == [], waiting
    said = (tmp_path / "b.out").read_text()
    assert "waiting for 1 free device of 0: other trials on this host hold them" in said, said
    go.touch()
    assert first.wait(timeout=300) == 0 and other.wait(timeout=300) == 0, (tmp_path / "b.out").read_text()
    assert_never_shared(intervals(record))


def test_an_agent_whose_sweep_is_done_does_not_wait_for_a_device_another_sweep_holds(tmp_path):
    """Its workers wait for a device before they claim a point: once nothing is left to run, they
    stop waiting, and the agent ends while another sweep's long trial holds the device."""
    record, go, env, first, _ = one_device_taken(tmp_path)
    go_too = tmp_path / "go-too"
    keys = {"command": f"python {HOLD}", "spec": None, "devices": [0]}
    long_config = write_config(
        tmp_path / "c", parameters={"x": [3], "behave": f"block:{go_too}", "record": str(record)}, **keys
    )
    other = start(long_config, env, out=tmp_path / "c.out")
    time.sleep(5)  # the other agent is up and waiting for device 0
    go.touch()  # the first sweep's one trial ends; the other's takes the device
    try:
        assert first.wait(timeout=120) == 0, (tmp_path / "a.out").read_text()
        assert other.poll() is None and "waiting for" not in (tmp_path / "a.out").read_text()
    finally:
        go_too.touch()
    assert other.wait(timeout=300) == 0, (tmp_path / "c.out").read_text()
    assert_never_shared(intervals(record))


def test_devices_with_a_remote_backend_is_refused(tmp_path):
    from mlflow_sweeper.config import load_config
    from mlflow_sweeper.errors import ConfigError

    config = write_config(tmp_path, entry_point="train", backend="kubernetes", devices=[0, 1])
    with pytest.raises(ConfigError, match=r"devices: .*backend_config"):
        load_config(config)
    unknown = write_config(tmp_path, "unknown.yaml", entry_point="train", backend="nosuch", devices=[0])
    with pytest.raises(ConfigError, match=r"backend 'nosuch' is not a backend known here either \(local, "):
        load_config(unknown)


def test_auto_with_fewer_gpus_than_a_trial_needs_exits_2_before_anything_is_written(tmp_path):
    """Run without devices, every trial would see (and share) the host's one GPU."""
    from conftest import run_cli

    record = tmp_path / "records.jsonl"
    config = config_for(tmp_path, record, 2, devices_per_trial=2)
    result = run_cli("sweep", str(config), cwd=tmp_path, env=fake_gpus(tmp_path, count=1))
    assert result.returncode == 2, result.stdout + result.stderr
    said = f"{config}: devices: auto found 1 GPU(s) on this host (0), fewer than devices_per_trial 2"
    assert said in result.stderr, result.stderr  # the file named, as for every config error
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sweeps").exists() and not record.exists()


def test_devices_per_trial_without_devices_is_said_to_do_nothing(tmp_path):
    from conftest import run_cli

    record = tmp_path / "records.jsonl"
    config = config_for(tmp_path, record, 1, devices=None, devices_per_trial=2)
    result = run_cli("sweep", str(config), cwd=tmp_path, env=fake_gpus(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "devices_per_trial applies only with devices, which this config does not name" in output
    assert [r["devices"] for r in intervals(record)] == [None]


@pytest.mark.timeout(600)
def test_two_agents_sharing_a_gpu_take_turns(tmp_path):
    """One agent names GPU 0 by index, the other by UUID: one device. An agent whose trial ended
    would take the GPU straight back (its next trial asks within a fraction of a second) and the
    other, waiting, would wait for every trial of the first: the waiting one goes first."""
    env = fake_gpus(tmp_path, count=1)
    agents, records = [], {}
    for letter, device in (("a", 0), ("b", "GPU-fake-0")):
        records[letter] = tmp_path / f"{letter}.jsonl"
        config = write_config(
            tmp_path, f"{letter}.yaml", sweep_name=f"s{letter}", command=f"python {HOLD}",
            parameters={"x": [1, 2, 3], "hold": 1.0, "record": str(records[letter])},
            spec=None, devices=[device],
        )  # fmt: skip
        agents.append((start(config, env, out=tmp_path / f"{letter}.out"), tmp_path / f"{letter}.out"))
    for agent, out in agents:
        assert agent.wait(timeout=300) == 0, out.read_text()
    runs = sorted(
        (run["start"], letter, run) for letter, record in records.items() for run in intervals(record)
    )
    assert len(runs) == 6
    assert_never_shared([run for _, _, run in runs])
    order = "".join(letter for _, letter, _ in runs)
    assert sum(a != b for a, b in zip(order, order[1:], strict=False)) >= 3, order  # not aaabbb
