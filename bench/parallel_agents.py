"""TPE on Branin with real agents: 4 agents x `-j 4` (16 trials at once) against one agent `-j 1`.

`warm_start.py` simulates trials in flight in one process; here the trials are real processes
(`trials/objective.py`, logged to an `mlflow server` over REST) claimed by real agents sharing
one SQLite Optuna storage, as a user would run them. Each trial of the parallel sweep sleeps
`--sleep` seconds so that 16 really are in flight; the sequential sweep's trials do not (one at a
time, their length changes nothing). Writes bench/PARALLEL_AGENTS.md:

    python bench/parallel_agents.py [--seeds 5] [--sleep 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import common
from common import OBJECTIVE, start_agent, write_config
from search import BRANIN, BRANIN_MIN, tracking_server

BUDGET = 60
AGENTS, JOBS = 4, 4


def sweep(directory: Path, server: str, seed: int, agents: int, jobs: int, sleep: float) -> tuple[float, int]:
    """One TPE sweep of the Branin command trial to its end; (best value, most trials at once)."""
    directory.mkdir()
    config = write_config(
        directory, command=f"python {OBJECTIVE} fn=branin sleep={sleep}", algorithm="tpe", seed=seed,
        max_trials=BUDGET, parameters=BRANIN, mlflow_storage=server,
        spec={"direction": "minimize", "metric": "value"},
    )  # fmt: skip
    runs = [start_agent(config, jobs=jobs, sample_every=None, log_name=f"a{n}.log") for n in range(agents)]
    for i, run in enumerate(runs):
        common.check_exit(run, run.wait(3600), f"{directory.name} agent {i}")
    stored = common.optuna_trials(common.sqlite_url(directory / "out" / "optuna.db"))
    trials = [t for t in stored if t.value is not None]
    assert len(trials) == BUDGET, f"{directory.name}: {len(trials)} trials completed, not {BUDGET}"
    return min(t.value for t in trials), most_at_once(trials)


def most_at_once(trials: list) -> int:
    events = sorted([(t.datetime_start, 1) for t in trials] + [(t.datetime_complete, -1) for t in trials])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("PARALLEL_AGENTS.md")))
    args = parser.parse_args()
    began = time.monotonic()
    sequential, parallel = "sequential (1 agent, -j 1)", f"16 at once ({AGENTS} agents x -j {JOBS})"
    rows: dict[str, list[float]] = {sequential: [], parallel: []}
    at_once = []
    with common.workdir("parallel-agents") as root, tracking_server(root) as server:
        for seed in range(args.seeds):
            one, _ = sweep(root / f"seq{seed}", server, seed, 1, 1, 0.0)
            many, most = sweep(root / f"par{seed}", server, seed, AGENTS, JOBS, args.sleep)
            rows[sequential].append(one)
            rows[parallel].append(many)
            at_once.append(most)
            print(f"seed {seed}: {one:.4f} / {many:.4f}, {most} at once", flush=True)
    lines = [
        "# TPE on Branin with real agents: 16 trials at once against one at a time",
        "",
        f"Written by `python bench/parallel_agents.py --seeds {args.seeds} --sleep {args.sleep}` "
        f"({time.monotonic() - began:.0f} s). Budget {BUDGET}, seeds 0-{args.seeds - 1}; the parallel "
        f"trials sleep {args.sleep} s; most trials at once per seed: {', '.join(map(str, at_once))}.",
        "",
        *(f"| {k} | {v} |" for k, v in [("", ""), ("---", "---")] + list(common.machine().items())),
        "",
        "| sweep | median best | median gap to the optimum | per seed |",
        "|---|---|---|---|",
    ]
    for name, values in rows.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.4f}" for v in values)
        lines.append(f"| {name} | {median:.4f} | {median - BRANIN_MIN:.4f} | {shown} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
