"""The MLproject's entry points find an interpreter with MLflow when the `python` first on PATH
has none (`mlflow run --env-manager local` without an activated environment), or say what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ENTRY_POINTS = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """The bin folder of a venv without MLflow (no pip either: nothing to install)."""
    root = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    bin_dir = root / "bin"
    found = subprocess.run([bin_dir / "python", "-c", "import mlflow"], capture_output=True)
    assert found.returncode != 0, "the bare venv sees MLflow: the test would prove nothing"
    return bin_dir


def run_entry_point(name: str, path: str, tmp_path: Path, **parameters: str) -> subprocess.CompletedProcess:
    """The entry point's command as MLflow Projects runs it: through a shell, in the project folder."""
    command = ENTRY_POINTS[name]["command"].format(**parameters)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME")}
    env["PATH"] = path
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "experiment": "exp",
                "sweep_name": "s1",
                "command": "python train.py",
                "parameters": {"x": [1, 2]},
                "mlflow_storage": f"sqlite:///{tmp_path / 'mlflow.db'}",
                "optuna_storage": f"sqlite:///{tmp_path / 'optuna.db'}",
            }
        )
    )
    (tmp_path / "train.py").write_text("")
    return path


def test_the_python_first_on_path_lacks_mlflow_and_status_still_runs(bare_python, tmp_path):
    """`python` is the bare venv's; the `mlflow` command's interpreter (its shebang) is used."""
    assert (Path(sys.executable).parent / "mlflow").exists()
    path = os.pathsep.join([str(bare_python), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    result = run_entry_point("status", path, tmp_path, config=config_file(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "exp/s1" in output and "not started" in output, output
    assert "ModuleNotFoundError" not in output


def test_the_interpreter_of_the_mlflow_run_that_started_it_is_used(bare_python, tmp_path):
    """`/path/to/venv/bin/mlflow run ...` with neither that venv nor any `mlflow` on PATH: the
    entry point finds the interpreter of the process that started it (Linux)."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("reads /proc: Linux only")
    tools = tmp_path / "bin"  # the shell's tools, and no other python than the bare one
    tools.mkdir()
    for name in ("sh", "head", "basename", "env", "cat", "tr"):
        if shutil.which(name):
            (tools / name).symlink_to(shutil.which(name))
    (tools / "python3").symlink_to(bare_python / "python")
    path = os.pathsep.join([str(bare_python), str(tools)])
    command = ENTRY_POINTS["status"]["command"].format(config=config_file(tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME")}
    env.update(PATH=path, PYTHONPATH=str(REPO))
    starter = "import subprocess, sys; sys.exit(subprocess.call(['/bin/sh', '-c', sys.argv[1]]))"
    result = subprocess.run(
        [sys.executable, "-c", starter, command],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "exp/s1" in output and "not started" in output, output


def test_without_any_python_with_mlflow_it_says_what_to_do(bare_python, tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("sh", "head", "basename", "env", "cat"):
        if shutil.which(name):
            (fake_bin / name).symlink_to(shutil.which(name))
    (fake_bin / "python3").symlink_to(bare_python / "python")
    path = os.pathsep.join([str(bare_python), str(fake_bin)])
    result = run_entry_point("sweep", path, tmp_path, config=config_file(tmp_path), n_jobs="1")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "no Python here has MLflow" in output, output
    assert "Activate the environment where mlflow-sweeper is installed" in output
    assert "--env-manager virtualenv" in output and "--env-manager conda" in output
    assert "Traceback" not in output and "ModuleNotFoundError" not in output, output


@pytest.mark.parametrize("name", ["sweep", "delete", "status"])
def test_every_sweeper_entry_point_goes_through_the_interpreter_finder(name):
    assert ENTRY_POINTS[name]["command"].startswith("sh scripts/with_python.sh -m mlflow_sweeper ")
