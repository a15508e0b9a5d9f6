"""Warm start and `refine` on Branin (or Hartmann-6), and TPE with 16 trials at once against one at a time.

In process, to stay small on a shared CPU: each sweep runs through the sweeper's own coordination
(`SweepStudy` on Optuna's InMemoryStorage: per-slot seeded samplers, claims, completion), the
follow-up config is the one `refine` writes (loaded by the real loader), and earlier results
enter through the same code as an agent's warm start (`warmstart.collect.prepare` and
`warmstart.entering.enter`), with the earlier trials standing in for the MLflow runs an agent
would read. No MLflow, no trial processes: the objective is computed in place.

    python bench/warm_start.py [--seeds 5] [--first-seed 0] [--function branin|hartmann6] [--out FILE]
        [--only refine|parallel] [--sequential-budgets 50,55] [--with-bound]

It writes bench/WARM_START.md for Branin, bench/WARM_START-hartmann6.md for Hartmann-6.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from optuna.storages import InMemoryStorage

from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy
from mlflow_sweeper.refine import advise, render
from mlflow_sweeper.search.algorithms import PointSource, believer
from mlflow_sweeper.warmstart.collect import EarlierResult, prepare
from mlflow_sweeper.warmstart.entering import enter

sys.path.insert(0, str(Path(__file__).with_name("trials")))
from objective import FUNCTIONS  # noqa: E402  (the functions the command trials compute)

optuna.logging.set_verbosity(optuna.logging.ERROR)


class Problem:
    """A test function with its space and known minimum; `--function` picks one."""

    def __init__(self, name: str, title: str, parameters: dict, minimum: float) -> None:
        self.name, self.title, self.parameters, self.minimum = name, title, parameters, minimum
        self.fn = FUNCTIONS[name]


PROBLEMS = {
    "branin": Problem(
        "branin", "Branin", {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}}, 0.397887
    ),
    "hartmann6": Problem(
        "hartmann6", "Hartmann-6", {f"x{i}": {"low": 0.0, "high": 1.0} for i in range(1, 7)}, -3.32237
    ),
}
PROBLEM = PROBLEMS["branin"]


def objective(config, params: dict) -> float:
    params = {**config.space.fixed_for(params), **params}  # refine may fix a parameter
    if PROBLEM.name == "branin":  # objective.py names Branin's inputs x and y
        return PROBLEM.fn({"x": params["x1"], "y": params["x2"]})
    return PROBLEM.fn(params)


def write_config(directory: Path, name: str, seed: int, trials: int, **keys) -> Path:
    data = {
        "experiment": "bench",
        "sweep_name": name,
        "command": "true",
        "algorithm": "tpe",
        "seed": seed,
        "max_trials": trials,
        "parameters": PROBLEM.parameters,
        "spec": {"metric": "value", "direction": "minimize"},
        **keys,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(config, storage, in_flight: int = 1, warm=None) -> SweepStudy:
    """Every slot of the budget, `in_flight` trials at a time (each sampled when claimed, the
    oldest completed first, as equal-length trials on parallel workers would)."""
    study = SweepStudy(storage, config, PointSource(config), "bench")
    study.create_or_find()
    if warm is not None:
        enter(study.store, study.study_id, study.source, warm)
    running = []
    while True:
        while len(running) < in_flight and (work := study.claim()) is not None:
            running.append(work)
        if not running:
            return study
        work = running.pop(0)
        study.complete(work, objective(config, work.params))


def best(study: SweepStudy) -> float:
    return study.best_trial().value


def as_earlier(study: SweepStudy) -> list[EarlierResult]:
    """The finished trials as an agent reads them from their runs: params and the metric."""
    source = f"sweep:{study.config.identity}"
    return [
        EarlierResult(f"run-{t.number}", source, dict(t.params), {"value": t.values[0]})
        for t in study.trials()
        if t.value is not None
    ]


def one_seed(directory: Path, seed: int) -> dict[str, float]:
    coarse_config = load_config(write_config(directory, f"coarse{seed}", seed, 30))
    coarse = run(coarse_config, InMemoryStorage())
    refined_path = directory / f"coarse{seed}-refined.yaml"
    refined_path.write_text(render(coarse_config, advise(coarse_config, coarse.trials()), refined_path))
    refined_config = load_config(refined_path)
    warm = prepare(refined_config, as_earlier(coarse), on_grid=False)
    warm_study = run(refined_config, InMemoryStorage(), warm=warm)
    cold_refined = run(refined_config, InMemoryStorage())
    cold60 = run(load_config(write_config(directory, f"cold{seed}", seed, 60)), InMemoryStorage())
    return {
        "coarse 30 then refined 30, warm-started": best(warm_study),
        "cold 60": best(cold60),
        "cold 30, refined space": best(cold_refined),
        "coarse 30 alone": best(coarse),
        "_fit": len(warm.trials),
    }


# One at a time with smaller budgets (`--sequential-budgets`): the budget 16 at once is worth.
SEQUENTIAL_BUDGETS: list[int] = []
# `--with-bound`: 16 at once with every running trial read as finished with its true value.
WITH_BOUND: list[bool] = []


class TrueValuesBelieved:
    """The believer told each running trial's true value: what no sampler can know, so the best
    any belief could do (what is left is the start-up: 16 points drawn before any result)."""

    def __init__(self, config) -> None:
        self.config = config

    def __enter__(self) -> None:
        self.saved, believer.believed_results = believer.believed_results, self.believed

    def __exit__(self, *exc) -> None:
        believer.believed_results = self.saved

    def believed(self, trials, sampling: int):
        finished, running = believer.finished_and_running(trials, sampling)
        if not finished:  # as the believer: nothing believed before a result exists
            return []
        return [believer.believed(r, [objective(self.config, r.params)], finished[-1]) for r in running]


def parallel_seed(directory: Path, seed: int) -> dict[str, float]:
    path = write_config(directory, f"par{seed}", seed, 60)
    smaller = {}
    for budget in SEQUENTIAL_BUDGETS:
        config = load_config(write_config(directory, f"seq{budget}-{seed}", seed, budget))
        smaller[f"sequential, {budget} trials"] = best(run(config, InMemoryStorage(), 1))
    liar = write_config(directory, f"liar{seed}", seed, 60, sampler_options={"constant_liar": True})
    no_liar = write_config(directory, f"noliar{seed}", seed, 60, sampler_options={"constant_liar": False})
    return {
        "sequential (1 at a time)": best(run(load_config(path), InMemoryStorage(), 1)),
        "16 at once (the default: running trials believed)": best(
            run(load_config(path), InMemoryStorage(), 16)
        ),
        "16 at once, Optuna's constant liar (constant_liar: true)": best(
            run(load_config(liar), InMemoryStorage(), 16)
        ),
        "16 at once, neither (constant_liar: false)": best(run(load_config(no_liar), InMemoryStorage(), 16)),
        **smaller,
        **(bounded(load_config(path)) if WITH_BOUND else {}),
    }


def bounded(config) -> dict[str, float]:
    with TrueValuesBelieved(config):
        return {
            "16 at once, running trials' true values known (a bound)": best(
                run(config, InMemoryStorage(), 16)
            )
        }


def table(rows: dict[str, list[float]]) -> list[str]:
    lines = ["| sweep | median best | median gap to the optimum | per seed |", "|---|---|---|---|"]
    for name, values in rows.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.4f}" for v in values)
        lines.append(f"| {name} | {median:.4f} | {median - PROBLEM.minimum:.4f} | {shown} |")
    return lines


def collect(seeds: range, fn) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for name, value in fn(Path(tmp), seed).items():
                rows.setdefault(name, []).append(value)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one on")
    parser.add_argument(
        "--sequential-budgets", default="", help="e.g. 50,55: one at a time with these budgets too"
    )
    parser.add_argument(
        "--with-bound", action="store_true", help="16 at once knowing running trials' true values too"
    )
    parser.add_argument("--function", choices=sorted(PROBLEMS), default="branin")
    parser.add_argument("--out")
    parser.add_argument("--only", choices=("refine", "parallel"), help="one of the two tables")
    args = parser.parse_args()
    global PROBLEM
    PROBLEM = PROBLEMS[args.function]
    SEQUENTIAL_BUDGETS[:] = [int(b) for b in args.sequential_budgets.split(",") if b]
    WITH_BOUND[:] = [True] if args.with_bound else []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    suffix = "" if PROBLEM.name == "branin" else f"-{PROBLEM.name}"
    out = Path(args.out or Path(__file__).with_name(f"WARM_START{suffix}.md"))
    started = time.monotonic()
    refine_rows = collect(seeds, one_seed) if args.only != "parallel" else {}
    fits = refine_rows.pop("_fit", [])
    parallel_rows = collect(seeds, parallel_seed) if args.only != "refine" else {}
    lines = [
        f"# Warm start and refine on {PROBLEM.title} (minimize; optimum {PROBLEM.minimum})",
        "",
        f"{args.seeds} seeds ({seeds.start}-{seeds.stop - 1}), TPE, budget 60; "
        "in process (see bench/warm_start.py); "
        f"{time.monotonic() - started:.0f} s in all.",
    ]
    if refine_rows:
        shown = ", ".join(str(int(f)) for f in fits)
        lines += ["", f"Earlier results that fit the refined space: {shown} of 30.", "", *table(refine_rows)]
    if parallel_rows:
        lines += ["", "## 16 trials at once vs one at a time (TPE, 60 trials, same seeds)", ""]
        lines += table(parallel_rows)
    lines.append("")
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
