"""How often `refine` fixes a parameter: one that does nothing (it should) and one that matters
(it should not), on small TPE sweeps.

In process, as bench/warm_start.py: each sweep runs through the sweeper's own coordination
(`SweepStudy` on Optuna's InMemoryStorage, per-slot seeded samplers), the objective is computed in
place, and the advice is `refine`'s own (`refine.advise`). For each problem, trial count and seed,
it records which parameters `refine` fixes.

    python bench/refine_fixing.py [--seeds 20] [--out FILE]

It writes bench/REFINE_FIXING.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.storages import InMemoryStorage

from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy
from mlflow_sweeper.refine import advise
from mlflow_sweeper.search.algorithms import PointSource

sys.path.insert(0, str(Path(__file__).with_name("trials")))
sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402
from objective import FUNCTIONS  # noqa: E402  (the functions the command trials compute)

optuna.logging.set_verbosity(optuna.logging.ERROR)
UNIT = {"low": 0.0, "high": 1.0}


@dataclass(frozen=True)
class Problem:
    title: str
    parameters: dict
    does_nothing: tuple[str, ...]  # the parameters the objective never reads
    value: object  # params -> the value to minimize


def _lr(p: dict) -> float:
    return (math.log10(p["lr"]) + 2.5) ** 2


PROBLEMS = [
    Problem(
        "lr (log) + unused",
        {"lr": {"low": 1e-5, "high": 1.0, "log": True}, "unused": UNIT},
        ("unused",),
        _lr,
    ),
    Problem(
        "lr (log) + batch (a list, unused)",
        {"lr": {"low": 1e-5, "high": 1.0, "log": True}, "batch": [16, 32, 64, 128]},
        ("batch",),
        _lr,
    ),
    Problem(
        "x + seed (int, unused) + optimizer (a list, +15 for sgd)",
        {"x": {"low": -10.0, "high": 10.0}, "seed": {"low": 0, "high": 1000, "type": "int"},
         "optimizer": ["sgd", "adam"]},
        ("seed",),
        lambda p: (p["x"] - 2) ** 2 + (15 if p["optimizer"] == "sgd" else 0),
    ),  # fmt: skip
    Problem(
        "x + y (10 times weaker) + unused",
        {"x": {"low": -10.0, "high": 10.0}, "y": {"low": -10.0, "high": 10.0}, "unused": UNIT},
        ("unused",),
        lambda p: (p["x"] - 2) ** 2 + 0.1 * (p["y"] + 1) ** 2,
    ),
    Problem(
        "Branin",
        {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}},
        (),
        lambda p: FUNCTIONS["branin"]({"x": p["x1"], "y": p["x2"]}),
    ),
    Problem(
        "Branin + unused",
        {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}, "unused": UNIT},
        ("unused",),
        lambda p: FUNCTIONS["branin"]({"x": p["x1"], "y": p["x2"]}),
    ),
    Problem(
        "Hartmann-6",
        {f"x{i}": UNIT for i in range(1, 7)},
        (),
        lambda p: FUNCTIONS["hartmann6"](p),
    ),
]


def fixed_after(directory: Path, problem: Problem, trials: int, seed: int) -> set[str]:
    data = {
        "experiment": "bench",
        "sweep_name": f"s{seed}",
        "command": "true",
        "algorithm": "tpe",
        "seed": seed,
        "max_trials": trials,
        "parameters": problem.parameters,
        "spec": {"metric": "value", "direction": "minimize"},
    }
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(path)
    study = SweepStudy(InMemoryStorage(), config, PointSource(config), "bench")
    study.create_or_find()
    while (work := study.claim()) is not None:
        study.complete(work, problem.value(work.params))
    return {c.name for c in advise(config, study.trials()).changes if c.kind == "fix"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", default="20,30,60")
    parser.add_argument("--out", default=str(Path(__file__).with_name("REFINE_FIXING.md")))
    args = parser.parse_args()
    counts = [int(n) for n in args.trials.split(",")]
    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for problem in PROBLEMS:
            for trials in counts:
                fixed = [fixed_after(Path(tmp), problem, trials, seed) for seed in range(args.seeds)]
                nothing = [n for n in problem.parameters if n in problem.does_nothing]
                matter = [n for n in problem.parameters if n not in problem.does_nothing]

                def share(names: list[str], fixed=fixed) -> str:
                    shares = [f"{n} {sum(n in f for f in fixed) / len(fixed):.0%}" for n in names]
                    return ", ".join(shares) or "-"

                rows.append(f"| {problem.title} | {trials} | {share(nothing)} | {share(matter)} |")
    took = time.monotonic() - started
    lines = [
        "# How often `refine` fixes a parameter",
        "",
        f"Written by `python bench/refine_fixing.py --seeds {args.seeds}` ({took:.0f} s): "
        f"TPE sweeps in process, seeds 0-{args.seeds - 1}; the share of seeds in which `refine` fixed each "
        "parameter at the best trial's value.",
        "",
        "|  |  |",
        "| --- | --- |",
        *[f"| {key} | {value} |" for key, value in machine().items()],
        "",
        "| problem | trials | does nothing: fixed (should be high) | matters: fixed (should be 0) |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
