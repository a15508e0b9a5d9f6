"""The search benchmarks: does early stopping pay, what a sampler costs the sweeper, what each
algorithm buys on a standard test function.

    python bench/search.py --quick              # ~15 minutes on 2 cores
    python bench/search.py --full               # the sizes below (about an hour; gp alone takes 25 minutes)
    python bench/search.py --quick --only early,samplers

1. early: random search of 40 trials over a learning curve (examples/curve.py: `val/loss` per
   epoch), without early stopping, with `median` and with `hyperband`: total epochs run and best
   value. Goal: best within 0.5 % of the unpruned best with at most 40 % of the epochs.
2. overhead: tpe, cmaes and gp, one agent `-j 1`, N trials (quick 150, full 1,000) of a command
   trial that logs one metric over MLflow's REST API: the agent's own cost per trial near trial N
   (gap between trial starts minus its wait for the trial's process, timed inside the agent by
   bench/timed_agent.py, with its MLflow calls split out) against Optuna's own ask + tell for the
   same sampler on the same kind of storage (SQLite) at the same N. Goal: at most 1.2 x.
3. samplers: Branin as a command trial, best value after 50 trials, median of 5 seeds (quick: 3),
   per algorithm.

Results go to bench/SEARCH.md with the machine noted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import (
    BENCH,
    OBJECTIVE,
    PY,
    REPO,
    check_exit,
    clean_env,
    loadavg,
    machine,
    optuna_trials,
    sqlite_url,
    start_agent,
    workdir,
    write_config,
)

CURVE = REPO / "examples" / "curve.py"
EPOCH_SECONDS = 0.2  # examples/curve.py's epoch in the early-stopping benchmark
BRANIN = {"x": {"low": -5.0, "high": 10.0}, "y": {"low": 0.0, "high": 15.0}}
BRANIN_MIN = 0.397887
SAMPLERS = ("random", "tpe", "cmaes", "gp", "qmc", "nsga2")


# ---- an MLflow tracking server: trials log over REST, without importing MLflow --------------------


@contextlib.contextmanager
def tracking_server(root: Path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [PY, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", sqlite_url(root / "server.db"),
         "--default-artifact-root", (root / "artifacts").as_uri()],
        cwd=root, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            proc.kill()
        log.close()


def sweep(directory: Path, jobs: int = 1, timeout: float = 7200, **keys) -> list:
    """Run one sweep to its end with one agent; return its Optuna trials."""
    config = write_config(directory, **keys)
    agent = start_agent(config, jobs=jobs, sample_every=None)
    check_exit(agent, agent.wait(timeout), str(directory.name))
    return optuna_trials(sqlite_url(directory / "out" / "optuna.db"), f"bench/{keys.get('sweep_name', 's')}")


def branin_keys(algorithm: str, server: str) -> dict:
    """The config of a Branin command trial sweep (minimised, logged to the tracking server)."""
    return {
        "command": f"python {OBJECTIVE} fn=branin",
        "algorithm": algorithm,
        "parameters": BRANIN,
        "mlflow_storage": server,
        "spec": {"direction": "minimize", "metric": "value"},
    }


def branin_sweep(directory: Path, algorithm: str, server: str, **keys) -> list:
    """A sweep of the Branin command trial by one agent."""
    return sweep(directory, **branin_keys(algorithm, server), **keys)


# ---- 1. early stopping ----------------------------------------------------------------------------


def early(quick: bool) -> dict:
    from mlflow.tracking import MlflowClient

    variants = {"none": None, "median": {"pruner": "median", "options": {"n_startup_trials": 5}}}
    variants["hyperband"] = {
        "pruner": "hyperband",
        "options": {"min_resource": 1, "max_resource": 30, "reduction_factor": 3},
    }
    results = {}
    for name, early_stopping in variants.items():
        with workdir(f"early-{name}") as directory:
            keys = {
                "command": f"python {CURVE} epochs=30 seconds_per_epoch={EPOCH_SECONDS}",
                "algorithm": "random",
                "parameters": {
                    "lr": {"low": 1e-4, "high": 1.0, "log": True},
                    "dropout": {"low": 0.0, "high": 0.6},
                },
                "max_trials": 40,
                "seed": 0,
                "mlflow_storage": sqlite_url(directory / "mlflow.db"),
                "spec": {"direction": "minimize", "metric": "val/loss"},
            }
            if early_stopping:
                # Read every epoch, as with real epochs of minutes and the default 10 s interval:
                # a slower read lets a doomed trial run further past each rung than users would see.
                keys["early_stopping"] = {**early_stopping, "interval": EPOCH_SECONDS}
            began = time.monotonic()
            trials = sweep(directory, jobs=2, **keys)
            seconds = time.monotonic() - began
            client = MlflowClient(tracking_uri=sqlite_url(directory / "mlflow.db"))
            epochs = sum(
                len(client.get_metric_history(t.user_attrs["mlflow_run_id"], "val/loss"))
                for t in trials
                if t.user_attrs.get("mlflow_run_id")
            )
            complete = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
            results[name] = {
                "epochs": epochs,
                "best": min(complete) if complete else None,
                "pruned": sum(t.state.name == "PRUNED" for t in trials),
                "complete": len(complete),
                "seconds": round(seconds, 1),
            }
        print(f"early[{name}]: {results[name]}", flush=True)
    base = results["none"]
    for name in ("median", "hyperband"):
        r = results[name]
        r["epochs_share"] = r["epochs"] / base["epochs"] if base["epochs"] else None
        r["best_gap"] = (r["best"] - base["best"]) / abs(base["best"]) if r["best"] and base["best"] else None
    return results


# ---- 2. sampler overhead --------------------------------------------------------------------------


def optuna_ask_tell(algorithm: str, n: int, directory: Path) -> list[float]:
    """Optuna alone: ask + tell per trial with the same sampler on a fresh SQLite storage."""
    import optuna

    sys.path.insert(0, str(OBJECTIVE.parent))
    from objective import branin

    from mlflow_sweeper.search.algorithms import ALGORITHMS

    sampler = ALGORITHMS[algorithm].sampler_class(seed=0)  # the class the sweeper uses
    study = optuna.create_study(storage=sqlite_url(directory / f"anchor-{algorithm}.db"), sampler=sampler)
    costs = []
    for _ in range(n):
        began = time.perf_counter()
        trial = study.ask()
        x = trial.suggest_float("x", -5.0, 10.0)
        y = trial.suggest_float("y", 0.0, 15.0)
        asked = time.perf_counter()
        value = branin({"x": x, "y": y})
        told = time.perf_counter()
        study.tell(trial, value)
        costs.append((asked - began) + (time.perf_counter() - told))
    return costs


def windows(values: list[float], size: int) -> list[float]:
    return [statistics.median(values[i : i + size]) for i in range(0, len(values) - size + 1, size)]


def timed_sweep(directory: Path, algorithm: str, server: str, n: int) -> tuple[list, dict, dict]:
    """A Branin sweep by one agent (-j 1) timed inside: per trial number, the wait for its process
    and the time of its MLflow calls."""
    config = write_config(directory, **branin_keys(algorithm, server), max_trials=n, seed=0)
    waits_file = directory / "waits.json"
    with open(directory / "agent.log", "wb") as log:
        agent = subprocess.run(
            [PY, str(BENCH / "timed_agent.py"), "sweep", str(config), "-j", "1", "-q"],
            cwd=directory, env=clean_env({"SWEEPER_BENCH_WAITS": str(waits_file)}),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=7200,
        )  # fmt: skip
    if agent.returncode != 0:
        raise RuntimeError(f"{algorithm}: the agent exited {agent.returncode}; see {directory / 'agent.log'}")
    timed = json.loads(waits_file.read_text())
    waits, mlflow_calls = ({int(k): v for k, v in timed[part].items()} for part in ("waits", "mlflow"))
    return optuna_trials(sqlite_url(directory / "out" / "optuna.db"), "bench/s"), waits, mlflow_calls


def overhead(
    quick: bool, algorithms: tuple[str, ...] = ("tpe", "cmaes", "gp"), trials: int | None = None
) -> dict:
    """The agent's own cost per trial: the gap between trial k's and k+1's starts minus the time
    it waited for trial k's process. It holds Optuna's ask and tell through the sweep's
    coordination, and the trial's MLflow run (four round trips to the tracking server)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n = trials or (150 if quick else 1000)
    window = max(10, min(100, n // 6))
    results = {}
    with workdir("overhead") as root, tracking_server(root) as server:
        for algorithm in algorithms:
            if algorithm == "gp" and not _has_torch():
                results[algorithm] = {"skipped": "PyTorch not installed (pip install 'mlflow-sweeper[gp]')"}
                continue
            directory = root / algorithm
            directory.mkdir()
            trials_, waits, mlflow_calls = timed_sweep(directory, algorithm, server, n)
            by_number = sorted(trials_, key=lambda t: t.number)
            starts = [t.datetime_start.timestamp() for t in by_number]
            own = [
                max(0.0, b - a - waits.get(t.number, 0.0))
                for t, a, b in zip(by_number, starts, starts[1:], strict=False)
            ]
            rest = [
                max(0.0, cost - mlflow_calls.get(t.number, 0.0))
                for t, cost in zip(by_number, own, strict=False)
            ]
            anchor = optuna_ask_tell(algorithm, n, root)
            tail_own = statistics.median(own[-window:])
            tail_rest = statistics.median(rest[-window:])
            tail_anchor = statistics.median(anchor[-window:])
            results[algorithm] = {
                "trials": n,
                "own_cost_at_end_ms": round(tail_own * 1000, 1),
                "of_which_mlflow_run_ms": round((tail_own - tail_rest) * 1000, 1),
                "optuna_and_coordination_at_end_ms": round(tail_rest * 1000, 1),
                "optuna_ask_tell_at_end_ms": round(tail_anchor * 1000, 1),
                "ratio": round(tail_own / tail_anchor, 2) if tail_anchor else None,
                "ratio_without_the_mlflow_run": round(tail_rest / tail_anchor, 2) if tail_anchor else None,
                "own_curve_ms": [round(v * 1000, 1) for v in windows(own, window)],
                "without_mlflow_curve_ms": [round(v * 1000, 1) for v in windows(rest, window)],
                "optuna_curve_ms": [round(v * 1000, 1) for v in windows(anchor, window)],
            }
            print(f"overhead[{algorithm}]: {results[algorithm]}", flush=True)
    return results


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---- 3. samplers on Branin ------------------------------------------------------------------------


def samplers(quick: bool) -> dict:
    seeds = range(3 if quick else 5)
    results = {}
    with workdir("samplers") as root, tracking_server(root) as server:
        for algorithm in SAMPLERS:
            if algorithm == "gp" and not _has_torch():
                results[algorithm] = {"skipped": "PyTorch not installed"}
                continue
            bests = []
            for seed in seeds:
                directory = root / f"{algorithm}-{seed}"
                directory.mkdir()
                trials = branin_sweep(
                    directory, algorithm, server, max_trials=50, seed=seed, sweep_name=f"{algorithm}_{seed}"
                )
                values = [t.value for t in trials if t.state.name == "COMPLETE"]
                bests.append(min(values))
            results[algorithm] = {
                "median_best": round(statistics.median(bests), 4),
                "gap_to_optimum": round(statistics.median(bests) - BRANIN_MIN, 4),
                "bests": [round(b, 4) for b in bests],
            }
            print(f"samplers[{algorithm}]: {results[algorithm]}", flush=True)
    return results


# ---- the report ---------------------------------------------------------------------------------


def write_results(mode: str, results: dict, before: str) -> Path:
    info = machine()
    lines = [
        "# Search benchmarks",
        "",
        f"`python bench/search.py --{mode}`. Machine and versions:",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        f"| load average (1, 5, 15 min) | before {before}; after {loadavg()} |",
        "",
    ]
    if "early" in results:
        r = results["early"]
        lines += [
            "## 1. Early stopping pays (40 random trials of examples/curve.py, 30 epochs each)",
            "",
            "| early stopping | epochs run | share of unpruned | best val/loss | gap to unpruned best "
            "| pruned |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in r.items():
            share = "1.00" if name == "none" else _fmt(v.get("epochs_share"))
            gap = "-" if name == "none" else _pct(v.get("best_gap"))
            lines.append(
                f"| {name} | {v['epochs']} | {share} | {_fmt(v['best'], 4)} | {gap} | {v['pruned']} |"
            )
        lines += ["", "Goal: best within 0.5 % of the unpruned best with at most 40 % of the epochs.", ""]
    if "overhead" in results:
        r = results["overhead"]
        lines += [
            "## 2. Sampler overhead (one agent, -j 1, SQLite Optuna storage, MLflow server)",
            "",
            "The agent's own cost per trial: the gap between two trial starts minus the time it waited "
            "for the first trial's process, and the share of it spent in the trial's MLflow calls "
            "(run created with its params, metric read, run ended, best on the parent: four or five "
            "round trips to the server), both timed inside the agent (bench/timed_agent.py). Medians "
            "over the last window of trials.",
            "",
            "| sampler | trials | own cost per trial | of which the MLflow run | Optuna and coordination "
            "| Optuna ask + tell | ratio | ratio without the MLflow run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, v in r.items():
            if not isinstance(v, dict):
                continue
            if "skipped" in v:
                lines.append(f"| {name} | - | skipped: {v['skipped']} | | | | | |")
                continue
            lines.append(f"| {name} | {v['trials']} | {v['own_cost_at_end_ms']} ms | "
                         f"{v.get('of_which_mlflow_run_ms', '-')} ms | "
                         f"{v.get('optuna_and_coordination_at_end_ms', '-')} ms | "
                         f"{v['optuna_ask_tell_at_end_ms']} ms | {v['ratio']} | "
                         f"{v.get('ratio_without_the_mlflow_run', '-')} |")  # fmt: skip
        lines += ["", "Per-trial curves (median per window, ms):", ""]
        for name, v in r.items():
            if isinstance(v, dict) and "own_curve_ms" in v:
                without = v.get("without_mlflow_curve_ms")
                lines.append(f"- {name}: sweeper {v['own_curve_ms']}; without the MLflow run "
                             f"{without}; Optuna {v['optuna_curve_ms']}")  # fmt: skip
        lines += ["", "Goal: at most 1.2 x Optuna's own ask + tell.", ""]
    if "samplers" in results:
        r = results["samplers"]
        lines += [
            "## 3. Samplers on Branin (minimum 0.397887), best after 50 trials",
            "",
            "| algorithm | median best | gap to the optimum | per seed |",
            "|---|---|---|---|",
        ]
        for name, v in r.items():
            if "skipped" in v:
                lines.append(f"| {name} | skipped: {v['skipped']} | | |")
            else:
                lines.append(f"| {name} | {v['median_best']} | {v['gap_to_optimum']} | {v['bests']} |")
        lines.append("")
    lines += ["## Raw figures", "", "```json", json.dumps(results, indent=1), "```", ""]
    path = BENCH / "SEARCH.md"
    path.write_text("\n".join(lines))
    return path


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:+.2f} %"


def previous_results() -> dict:
    """The figures of an earlier run (kept for the benchmarks this run does not redo)."""
    path = BENCH / "SEARCH.md"
    if not path.exists():
        return {}
    text = path.read_text()
    start, end = text.find("```json\n"), text.rfind("\n```")
    if start < 0 or end <= start:
        return {}
    try:
        return json.loads(text[start + len("```json\n") : end])
    except ValueError:
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--only", default="early,overhead,samplers")
    parser.add_argument("--samplers", default="tpe,cmaes,gp", help="overhead: the samplers to measure")
    parser.add_argument("--trials", type=int, help="overhead: trials per sampler (quick 150, full 1,000)")
    args = parser.parse_args()
    before = loadavg()
    benchmarks = {
        "early": early,
        "overhead": lambda quick: overhead(quick, tuple(args.samplers.split(",")), args.trials),
        "samplers": samplers,
    }
    results = previous_results()
    for name in (n.strip() for n in args.only.split(",")):
        # Rows this run did not redo (another sampler's overhead, say) stay as they were.
        results[name] = {**results.get(name, {}), **benchmarks[name](args.quick)}
    path = write_results("quick" if args.quick else "full", results, before)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
