"""Devices and failure triage, in process: parsing `devices`, `auto` within
CUDA_VISIBLE_DEVICES, `-j` from device groups, the host-wide pool, and what a log tail says."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import threading

import pytest
import yaml

from mlflow_sweeper.agent.outcome import Ending, Kind, Outcome, classify
from mlflow_sweeper.agent.triage import triage
from mlflow_sweeper.config import load_config
from mlflow_sweeper.devices import (
    DeviceLock,
    DevicePlan,
    DevicePool,
    GpuListing,
    NoDevicePool,
    UnusableDevices,
    detect_gpus,
    parse_devices,
    plan_devices,
    visible_gpus,
)
from mlflow_sweeper.errors import ConfigError
from mlflow_sweeper.triage import DEFAULT_INFEASIBLE, infeasible_reason, missing_metric_reason, usage_error

SYSTEM_PYTHON = "/usr/bin/python3"  # one that user nobody can run (a virtualenv under /root is not)
LISTING = "\n".join(f"GPU {i}: NVIDIA H100 (UUID: GPU-{i}abc-def)" for i in range(4))


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        ("auto", "auto"),
        ("AUTO", "auto"),
        ([0, 1], ("0", "1")),
        ("0, 2", ("0", "2")),
        (3, ("3",)),
        ("GPU-5f0e5b8e-1a2b,MIG-2222", ("GPU-5f0e5b8e-1a2b", "MIG-2222")),
        (["MIG-GPU-5f0e/1/0"], ("MIG-GPU-5f0e/1/0",)),  # the older MIG form
    ],
)
def test_devices_forms(given, parsed):
    assert parse_devices(given) == parsed


@pytest.mark.parametrize(
    "given",
    [[], "", [0, 0], [-1], True, {"a": 1}, [1.5], "none", ["cpu"], "gpu1", "cuda:0", "Hunter2", ["0x1"]],
)
def test_bad_devices_are_refused(given, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "devices": given}))
    with pytest.raises(ConfigError, match="devices: "):
        load_config(path)


MINIMAL = {"experiment": "e", "sweep_name": "s", "command": "python t.py", "parameters": {"x": [1]}}


def test_auto_reads_nvidia_smi_within_cuda_visible_devices():
    assert visible_gpus(LISTING, None) == ("0", "1", "2", "3")
    assert visible_gpus(LISTING, "1,3") == ("1", "3")
    assert visible_gpus(LISTING, "GPU-2abc") == ("GPU-2abc",)
    assert visible_gpus(LISTING, "") == ()
    assert visible_gpus("No devices were found", None) == ()


MIG_LISTING = """GPU 0: NVIDIA A100 (UUID: GPU-0abc-def)
  MIG 3g.40gb     Device  0: (UUID: MIG-1111-aaaa)
  MIG 3g.40gb     Device  1: (UUID: MIG-2222-bbbb)
GPU 1: NVIDIA A100 (UUID: GPU-1abc-def)"""


def test_auto_keeps_mig_instances_cuda_visible_devices_names():
    # GPU 0 is split into two instances: each is a device (CUDA would show `0` as one of them)
    assert visible_gpus(MIG_LISTING, None) == ("MIG-1111-aaaa", "MIG-2222-bbbb", "1")
    assert visible_gpus(MIG_LISTING, "MIG-2222-bbbb,1") == ("MIG-2222-bbbb", "1")
    assert visible_gpus(MIG_LISTING, "MIG-2222") == ("MIG-2222",)  # a prefix, as CUDA takes it
    assert visible_gpus(MIG_LISTING, "MIG-9999") == ()


def test_a_whole_gpu_and_its_mig_instances_never_run_at_once(tmp_path, monkeypatch):
    """A trial given GPU 0 holds its MIG instances too: an agent given one of them waits while it
    runs, and it waits while one of them runs; the two instances run side by side. A list naming
    a GPU and one of its instances is refused."""
    fake_nvidia_smi(tmp_path, MIG_LISTING, monkeypatch)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    whole = plan_devices(("0",), 1, "CUDA_VISIBLE_DEVICES")
    assert whole.lock_names("0") == ("0", "GPU-0abc-def", "MIG-1111-aaaa", "MIG-2222-bbbb")
    first, second = (plan_devices((mig,), 1, "CUDA_VISIBLE_DEVICES") for mig in ("MIG-1111", "MIG-2222-bbbb"))
    assert first.lock_names("MIG-1111") == ("MIG-1111", "MIG-1111-aaaa")

    on_gpu = DevicePool(whole, tmp_path).try_acquire()
    assert on_gpu is not None
    assert DevicePool(first, tmp_path).try_acquire() is None
    assert DevicePool(second, tmp_path).try_acquire() is None
    on_gpu.release()
    on_first = DevicePool(first, tmp_path).try_acquire()
    assert on_first is not None
    assert DevicePool(whole, tmp_path).try_acquire() is None
    on_second = DevicePool(second, tmp_path).try_acquire()
    assert on_second is not None
    on_first.release(), on_second.release()
    assert plan_devices(("1",), 1, "CUDA_VISIBLE_DEVICES").lock_names("1") == ("1", "GPU-1abc-def")

    with pytest.raises(UnusableDevices, match="MIG-2222 is a MIG instance of GPU 0, also listed"):
        plan_devices(("0", "MIG-2222"), 1, "CUDA_VISIBLE_DEVICES")

    found = plan_devices("auto", 1, "CUDA_VISIBLE_DEVICES")  # each instance a device: 3 at once
    assert found.devices == ("MIG-1111-aaaa", "MIG-2222-bbbb", "1") and found.groups == 3
    assert found.lock_names("MIG-1111-aaaa") == ("MIG-1111-aaaa",)
    assert found.lock_names("1") == ("GPU-1abc-def",)


def test_a_gpu_is_locked_by_its_uuid_however_it_is_named():
    listing = GpuListing.parse(LISTING)
    assert [listing.identity(d) for d in ("2", "GPU-2abc-def", "GPU-2abc")] == ["GPU-2abc-def"] * 3
    assert listing.identity("7") == "7"  # not listed: locked as given
    assert GpuListing.parse("GPU 0: Old GPU").identity("0") == "0"  # no UUID listed


def fake_nvidia_smi(directory, listing: str, monkeypatch) -> None:
    tool = directory / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\ncat <<'END'\n{listing}\nEND\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")


def test_auto_finding_no_gpu_says_why(tmp_path, monkeypatch):
    """None listed, or CUDA_VISIBLE_DEVICES leaving none of those listed: each says which."""
    fake_nvidia_smi(tmp_path, "", monkeypatch)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus, _, note = detect_gpus()
    assert gpus == ()
    assert note == "devices: auto found no GPU (nvidia-smi -L lists none): trials run without devices"
    fake_nvidia_smi(tmp_path, LISTING, monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "9")
    gpus, _, note = detect_gpus()
    assert gpus == () and "CUDA_VISIBLE_DEVICES='9' leaves none of the" in note, note


def test_agents_naming_one_gpu_by_index_and_by_uuid_take_turns(tmp_path, monkeypatch):
    """`auto` within CUDA_VISIBLE_DEVICES=GPU-2abc (a scheduler's UUID) and a list giving `2`: one
    GPU, one lock. Agents confined to different GPUs, each seen as `0`, do not wait for each other."""
    fake_nvidia_smi(tmp_path, LISTING, monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-2abc")
    by_uuid = plan_devices("auto", 1, "CUDA_VISIBLE_DEVICES")
    assert by_uuid.devices == ("GPU-2abc",) and by_uuid.identities == ("GPU-2abc-def",)
    by_index = plan_devices(("2", "3"), 1, "CUDA_VISIBLE_DEVICES")
    held = DevicePool(by_uuid, tmp_path).try_acquire()
    assert held is not None and held.environment["CUDA_VISIBLE_DEVICES"] == "GPU-2abc"
    other = DevicePool(by_index, tmp_path).try_acquire()
    assert other is not None and other.ids == ("3",)  # GPU 2 is taken, whatever its name
    assert DevicePool(by_index, tmp_path).try_acquire() is None
    held.release()
    other.release()

    job_a, job_b = tmp_path / "a", tmp_path / "b"
    job_a.mkdir(), job_b.mkdir()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    plans = []
    for job, uuid in ((job_a, "GPU-aaaa"), (job_b, "GPU-bbbb")):
        with monkeypatch.context() as inside:
            fake_nvidia_smi(job, f"GPU 0: Fake (UUID: {uuid})", inside)
            plans.append(plan_devices("auto", 1, "CUDA_VISIBLE_DEVICES"))
    holds = [DevicePool(plan, tmp_path).try_acquire() for plan in plans]
    assert all(hold is not None and hold.ids == ("0",) for hold in holds)
    for hold in holds:
        hold.release()


def test_a_listed_id_is_also_locked_as_written(tmp_path, monkeypatch):
    """An agent that could not ask nvidia-smi locks `2` alone: one that could locks `2` and the
    UUID, so the two still take turns. `auto`'s ids are nvidia-smi's: locked by UUID alone."""
    bare = DevicePlan(("2",))
    assert bare.lock_names("2") == ("2",)
    fake_nvidia_smi(tmp_path, LISTING, monkeypatch)
    listed = plan_devices(("2",), 1, "CUDA_VISIBLE_DEVICES")
    assert listed.lock_names("2") == ("2", "GPU-2abc-def")
    held = DevicePool(bare, tmp_path).try_acquire()
    assert held is not None and DevicePool(listed, tmp_path).try_acquire() is None
    held.release()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert plan_devices("auto", 1, "CUDA_VISIBLE_DEVICES").lock_names("2") == ("GPU-2abc-def",)
    assert plan_devices(("2",), 1, "HIP_VISIBLE_DEVICES").lock_names("2") == ("2",)  # not CUDA's


def test_two_ids_of_one_gpu_are_refused(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, LISTING, monkeypatch)
    with pytest.raises(UnusableDevices, match="2 and GPU-2abc name one GPU"):
        plan_devices(("2", "GPU-2abc"), 1, "CUDA_VISIBLE_DEVICES")


def test_an_id_that_names_no_gpu_listed_is_refused(tmp_path, monkeypatch):
    """A trial handed it would see no GPU. Without nvidia-smi, or for another variable than
    CUDA's, nothing says which ids there are: the list is taken as given."""
    fake_nvidia_smi(tmp_path, LISTING, monkeypatch)
    with pytest.raises(UnusableDevices) as refused:
        plan_devices(("0", "5", "GPU-9"), 1, "CUDA_VISIBLE_DEVICES")
    assert str(refused.value) == (
        "devices: 5, GPU-9 are not a GPU of this host (nvidia-smi -L lists 0, 1, 2, 3 "
        "(GPU-0abc-def, GPU-1abc-def, GPU-2abc-def, GPU-3abc-def))"
    )
    assert plan_devices(("3", "GPU-1abc"), 1, "CUDA_VISIBLE_DEVICES").identities == (
        "GPU-3abc-def",
        "GPU-1abc-def",
    )
    assert plan_devices(("5",), 1, "HIP_VISIBLE_DEVICES").devices == ("5",)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert plan_devices(("5",), 1, "CUDA_VISIBLE_DEVICES").devices == ("5",)


def test_cuda_trials_number_gpus_as_nvidia_smi_does_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    held = DevicePool(DevicePlan(("0",)), tmp_path).try_acquire()
    assert held.environment == {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")  # the user's choice stands
    assert held.environment == {"CUDA_VISIBLE_DEVICES": "0"}
    held.release()


def test_jobs_follow_device_groups_and_are_capped():
    plan = DevicePlan(("0", "1", "2", "3"), per_trial=2)
    assert plan.jobs(None) == (2, None)
    assert plan.jobs(1) == (1, None)
    jobs, note = plan.jobs(8)
    assert jobs == 2 and "capped to 2" in note
    assert DevicePlan().jobs(None) == (1, None) and DevicePlan().jobs(3) == (3, None)


def test_config_checks_and_defaults(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    config = load_config(path)
    assert config.devices is None and config.devices_per_trial == 1
    assert config.device_env == "CUDA_VISIBLE_DEVICES" and config.infeasible_when == tuple(DEFAULT_INFEASIBLE)
    for keys, fragment in [
        ({"infeasible_when": ["(unclosed"]}, "infeasible_when: '(unclosed' is not a valid regular"),
        ({"devices": [0], "devices_per_trial": 2}, "devices_per_trial: is 2, more than the 1 device"),
        ({"device_env": "CUDA VISIBLE"}, "device_env: expected the name of an environment variable"),
        ({"device_env": "MLFLOW_RUN_ID"}, "device_env: MLFLOW_RUN_ID is set by the sweeper or MLflow"),
        ({"device_env": "SWEEPER_TRIAL"}, "device_env: SWEEPER_TRIAL is set by the sweeper or MLflow"),
    ]:
        path.write_text(yaml.safe_dump({**MINIMAL, **keys}))
        with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
            load_config(path)


def test_the_pool_never_hands_one_device_to_two_holders(tmp_path):
    plan = DevicePlan(("0", "1", "2"), per_trial=2)
    mine, other_agent = DevicePool(plan, tmp_path), DevicePool(plan, tmp_path)
    first = mine.try_acquire()
    assert first is not None and first.ids == ("0", "1")
    assert first.environment["CUDA_VISIBLE_DEVICES"] == "0,1" and first.tags == {"sweeper.devices": "0,1"}
    assert other_agent.try_acquire() is None  # one device left, two needed
    first.release()
    second = other_agent.try_acquire()
    assert second is not None and second.ids == ("0", "1")
    second.release()


def test_a_device_is_locked_whatever_variable_carries_it_and_leaves_no_file(tmp_path):
    """One lock per device on the host: an agent giving GPU 0 as HIP_VISIBLE_DEVICES and another
    as CUDA_VISIBLE_DEVICES take turns."""
    cuda = DevicePool(DevicePlan(("0", "1")), tmp_path)
    hip = DevicePool(DevicePlan(("0",), env_name="HIP_VISIBLE_DEVICES"), tmp_path)
    held = cuda.try_acquire()
    assert held is not None and held.ids == ("0",)
    assert hip.try_acquire() is None
    held.release()
    taken = hip.try_acquire()
    assert taken is not None and taken.environment == {"HIP_VISIBLE_DEVICES": "0"}
    if sys.platform.startswith("linux"):
        assert not any(tmp_path.iterdir())  # an abstract socket: nothing to leave behind
    taken.release()


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or os.geteuid() != 0
    or not shutil.which("setpriv")
    or not os.path.exists(SYSTEM_PYTHON),
    reason=f"acts as another user: needs root, setpriv and {SYSTEM_PYTHON} on Linux",
)
def test_the_hosts_own_lock_of_a_device_has_one_name_whatever_the_users_temp_directory(monkeypatch):
    """TMPDIR is often per user or per job (pam_tmpdir, Slurm): the lock's name does not follow it."""
    monkeypatch.delenv("SWEEPER_DEVICE_LOCK_DIR", raising=False)
    names = set()
    for tmp in ("/tmp", "/var/tmp"):
        monkeypatch.setenv("TMPDIR", tmp)
        names.add(DeviceLock(None, "0").address)
    assert names == {"\0mlflow-sweeper/device/0"}


def test_a_device_held_by_one_user_is_not_handed_to_another(tmp_path):
    """The lock is host-wide, not per user: `nobody` cannot take a device root's trial holds."""
    held = DevicePool(DevicePlan(("0",)), tmp_path).try_acquire()
    assert held is not None
    address = DeviceLock(tmp_path, "0").address
    bind = "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1].replace('@', chr(0), 1))"
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PYTHON, "-c", bind]
    refused = subprocess.run([*as_nobody, "@" + address[1:]], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "Address already in use" in refused.stderr, refused.stderr
    held.release()
    taken = subprocess.run([*as_nobody, "@" + address[1:]], capture_output=True, text=True, timeout=30)
    assert taken.returncode == 0, taken.stderr


def test_waiting_for_devices_ends_on_stop(tmp_path):
    pool = DevicePool(DevicePlan(("0",)), tmp_path)
    held = pool.try_acquire()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert pool.acquire(stop) is None
    held.release()
    assert NoDevicePool().acquire(stop).environment == {}


def test_infeasible_patterns_match_the_log_tail():
    tail = "epoch 3\nTraceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory. Tried"
    assert "CUDA out of memory" in infeasible_reason(tail, DEFAULT_INFEASIBLE)
    assert infeasible_reason(tail, ()) is None
    assert infeasible_reason("ValueError: bad", DEFAULT_INFEASIBLE) is None


def test_usage_errors_name_what_the_script_refused():
    argparse_tail = "usage: train.py [-h]\ntrain.py: error: unrecognized arguments: --hiden 64"
    assert "--hiden 64" in usage_error(argparse_tail, 2)
    bad_int = "usage: train.py [-h]\ntrain.py: error: argument --x: invalid int value: '0.5'"
    assert "--x" in usage_error(bad_int, 2) and "invalid int value" in usage_error(bad_int, 2)
    assert usage_error("error: unrecognized arguments: --hiden 64", 1) is None  # no usage line
    assert usage_error("Traceback ...\nValueError: x", 1) is None


def test_missing_metric_names_a_near_one():
    reason = missing_metric_reason("val_accuracy", ["loss", "val/accuracy"])
    assert "did you mean 'val/accuracy'?" in reason and "'loss'" in reason
    assert "no metric at all" in missing_metric_reason("score", [])


def test_triage_refines_outcomes(tmp_path):
    from mlflow_sweeper.config.model import SweepConfig

    config = SweepConfig.__new__(SweepConfig)
    object.__setattr__(config, "infeasible_when", tuple(DEFAULT_INFEASIBLE))
    log = tmp_path / "trial.log"
    log.write_text("RuntimeError: CUDA out of memory.\n")
    failed = Ending(succeeded=False, exit_code=1)
    oom = triage(classify(failed, "score", None), failed, log, config, "score", ())
    assert oom.kind is Kind.INFEASIBLE and not oom.retry
    ok = Ending(succeeded=True, exit_code=0)
    nan = triage(classify(ok, "score", math.nan), ok, log, config, "score", ())
    inf = triage(classify(ok, "score", math.inf), ok, log, config, "score", ())
    assert nan.kind is Kind.INFEASIBLE and inf.kind is Kind.INFEASIBLE
    missing = triage(classify(ok, "score", None), ok, log, config, "score", ("scor",))
    assert missing.kind is Kind.FAILED and not missing.retry and "did you mean 'scor'" in missing.reason
    log.write_text("usage: t.py\nt.py: error: unrecognized arguments: --lr 1\n")
    refused = Ending(succeeded=False, exit_code=2)
    usage = triage(classify(refused, "score", None), refused, log, config, "score", ())
    assert usage.kind is Kind.SETUP
    log.write_text("ValueError\n")
    plain = triage(classify(failed, "score", None), failed, log, config, "score", ())
    assert plain == Outcome(Kind.FAILED, reason="the run failed (exit code 1)", run_status="FAILED")
    timed_out = Ending(timed_out_after=5.0)
    assert triage(classify(timed_out, "score", None), timed_out, log, config, "score", ()).retry


def test_a_run_killed_by_a_signal_says_which():
    from mlflow_sweeper.agent.outcome import failed_reason

    assert failed_reason(1) == "the run failed (exit code 1)"
    assert failed_reason(-11) == "the run failed (killed by SIGSEGV, exit code -11)"
    assert failed_reason(-9) == "the run failed (killed by SIGKILL, exit code -9)"
    assert failed_reason(None) == "the run failed"
    outcome = classify(Ending(succeeded=False, exit_code=-6), "score", None)
    assert outcome.kind is Kind.FAILED and "killed by SIGABRT" in outcome.reason
