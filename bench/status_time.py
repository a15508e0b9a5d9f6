"""How long `mlflow-sweeper status` takes on a real 20-trial sweep (SQLite for both stores).

    python bench/status_time.py [--trials 20] [--repeat 5] [--dir DIR]

The sweep is run once (trials run `true`: no objective, so they cost only the agent's own
work), then `python -m mlflow_sweeper status` is timed `--repeat` times as a user would run it:
a fresh process each time, so imports count. Prints the median and the machine it ran on (its
load matters: on 2 shared cores, numbers double under load).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    python = platform.python_version()
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load {load}, Python {python}"


def run_sweep(directory: Path, trials: int) -> Path:
    config = directory / "sweep.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "experiment": "bench",
                "sweep_name": "status",
                "command": "true",
                "parameters": {"x": list(range(trials))},
                "optuna_storage": "sqlite:///optuna.db",
                "mlflow_storage": "sqlite:///mlflow.db",
            }
        )
    )
    sweep = [sys.executable, "-m", "mlflow_sweeper", "sweep", str(config), "-j", "4", "--quiet"]
    subprocess.run(sweep, check=True, cwd=directory, capture_output=True)
    return config


def time_status(config: Path, repeat: int) -> tuple[list[float], str]:
    times, out = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "mlflow_sweeper", "status", str(config)],
            check=True,
            capture_output=True,
            text=True,
            cwd=config.parent,
        )
        times.append(time.perf_counter() - started)
        out = result.stdout
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", help="run (or reuse) the sweep in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.dir or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "sweep.yaml"
        if not (directory / "optuna.db").exists():
            config = run_sweep(directory, args.trials)
        times, out = time_status(config, args.repeat)
    print(out.rstrip())
    print(
        f"status: median {statistics.median(times):.2f} s, min {min(times):.2f} s over {len(times)} runs "
        f"({args.trials} trials) on {machine()}"
    )


if __name__ == "__main__":
    main()
