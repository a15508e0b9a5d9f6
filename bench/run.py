"""Run the benchmark suite of issue 5, print the table and write bench/RESULTS.md.

    python bench/run.py --quick          # a few minutes, small sizes
    python bench/run.py --full           # the sizes of the issue (2,000 trials, 400 agents' trials, ...)
    python bench/run.py --quick --only 1,4 --profile

--only picks benchmarks (1 also yields 6, memory, measured in the same agent run); --profile
also runs bench/profiling.py on the own-cost workload: bench/PROFILE.md (SQLite) and
bench/PROFILE-postgres.md.
Set BENCH_KEEP=1 to keep the work dirs under bench/work/ and the PostgreSQL databases.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from common import BENCH, PY, WORK, loadavg, machine
from suite import BENCHMARKS, FULL, QUICK, Result

CAVEAT = (
    "Numbers measured on a shared machine while other work ran (see the load averages) are noisy; "
    "compare each figure with its anchor from the same run rather than across runs."
)


def table(results: list[Result]) -> list[str]:
    lines = [
        "| # | figure | measured | anchor (same run) | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for result in sorted(results, key=lambda r: r.name):
        for row in result.rows:
            met = "—" if row.met is None else ("yes" if row.met else "**no**")
            lines.append(
                f"| {row.bench} | {row.figure} | {row.measured} | {row.anchor or '—'} | {row.goal or '—'} "
                f"| {met} |"
            )
        if result.error:
            lines.append(f"| {result.name.split()[0]} | {result.name} | error: {result.error} | | | |")
    return lines


def plain(results: list[Result]) -> str:
    """The table for a terminal: one block per row."""
    out = []
    for result in sorted(results, key=lambda r: r.name):
        out.append(f"== {result.name}  ({result.seconds:.0f} s, load {result.load})")
        for row in result.rows:
            met = "" if row.met is None else ("  [met]" if row.met else "  [NOT MET]")
            out.append(f"   {row.figure}: {row.measured}{met}")
            if row.anchor:
                out.append(f"      anchor: {row.anchor}")
            if row.goal:
                out.append(f"      goal:   {row.goal}")
        if result.error:
            out.append(f"   ERROR: {result.error}")
    return "\n".join(out)


def write_results(path: Path, mode: str, info: dict, results: list[Result], loads: dict) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"`python bench/run.py --{mode}` ({'small sizes' if mode == 'quick' else 'the sizes of issue 5'}). "
        "Each figure sits beside its anchor, measured in the same run on the same machine.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        f"| load average (1, 5, 15 min) | before {loads['before']}; after {loads['after']} |",
        "",
        f"> {CAVEAT}",
        "",
        "## Results",
        "",
        *table(results),
        "",
        "## How each figure is measured",
        "",
        "- Trial start times are Optuna's `datetime_start` of each trial, stamped by the agent when it "
        "creates the trial; a *gap* is the time between two consecutive trial starts, i.e. the whole "
        "cycle of one trial (claim, MLflow run, launch, wait, record, tell).",
        '- 1: `command: "true"` with no `spec` over an N-point grid, one agent, `-j 1`, SQLite for both '
        "storages. Anchor: `optuna.samplers.GridSampler` over the same N points, `study.optimize` on a "
        "fresh SQLite storage (gap between objective calls). Floor: the median of Optuna RandomSampler "
        "ask+tell, an MLflow run's create (tags) + log params + end, and Popen(`true`)+wait, each on "
        "the libraries' default SQLite settings (rollback journal, an fsync per commit); the sweeper "
        "runs its stores in WAL without an fsync per commit, so it can come in under this floor.",
        "- 2: the entry point `train` of `bench/project` (imports mlflow, logs one metric) as a sweep "
        "with `spec`, `-j 1`. Anchors, each on its own SQLite MLflow store: the same `python train.py "
        "--x i` run bare in a loop that creates each run first and passes `MLFLOW_RUN_ID` (as MLflow "
        "Projects does; store in WAL mode as the sweeper leaves its own), run before and after the "
        "sweep; the same loop where the script creates its own run (a user's `python train.py`: "
        "MLflow then also resolves git/source context); and `mlflow.projects.run(..., "
        "synchronous=False)` + `wait()` per trial inside nested runs, as MLflow's hyperparameter "
        "example does. The goal is judged against the first, leanest loop.",
        '- 3: `sh -c "sleep 1"` trials, `-j 1, 4, 16`, trials-per-worker fixed. Steady throughput: '
        "trial starts per second over whole rounds of j starts, leaving out the first and the last "
        "round (ramp-up and wind-down); makespan throughput: completed trials / (last completion - "
        "first start). The goal is judged on the steady figure. Anchor: the same sleeps in a plain "
        "thread pool. Agent CPU from psutil between the first and the last trial start.",
        "- 4: a 100,000-point grid (int x categorical x stepped float); time from starting the agent "
        "process to the first trial's start, with the MLflow store's tables created beforehand; "
        "then `--count N` trials; start-up measured 2 (quick) or 3 (full) times, interleaved, best "
        "shown. Anchors: the same for a small grid of the same shape (N points), and Optuna "
        "GridSampler from process start to its first trial on the same 100,000 points.",
        "- 5: 4 agents started together with `-j 4` on fresh PostgreSQL databases (one for Optuna, one "
        "for MLflow, dropped afterwards), 1 s sleep trials. Throughput while all agents are up: trial "
        "starts per second from the last agent's first trial to the first agent's last trial (whole "
        "rounds of 16); makespan throughput beside it. Anchor: one agent `-j 1` on its own databases "
        "(1 / its cycle), times 16. Duplicates counted per grid point over COMPLETE Optuna trials and "
        "FINISHED MLflow trial runs.",
        "- 6: the agent's RSS (psutil, every 0.1 s) during benchmark 1's run, when 100 and when all N "
        "trials had started; the peak (usually in the end-of-sweep checks) is shown beside it. "
        "Anchor: the GridSampler process's RSS at the same trial counts.",
        "",
        "## Raw figures",
        "",
        "```json",
        json.dumps(
            {r.name: {**r.details, "seconds": round(r.seconds, 1), "load": r.load} for r in results},
            indent=1,
            default=str,
        ),
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, a few minutes (default)")
    mode.add_argument("--full", action="store_true", help="the sizes of issue 5")
    parser.add_argument("--only", default="1,2,3,4,5", help="benchmarks to run, e.g. 1,4 (6 comes with 1)")
    parser.add_argument("--profile", action="store_true", help="also profile the own-cost workload")
    parser.add_argument("--output", default=str(BENCH / "RESULTS.md"), help="where to write the results")
    args = parser.parse_args(argv)
    mode_name = "full" if args.full else "quick"
    sizes = FULL if args.full else QUICK
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    chosen = ["1" if b == "6" else b for b in chosen]
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)} (6 comes with 1)")
    WORK.mkdir(exist_ok=True)
    info = machine()
    loads = {"before": loadavg()}
    print(f"mlflow-sweeper benchmarks ({mode_name}): {info['cpu']}, {info['cores']}, load {loads['before']}")
    results: list[Result] = []
    for key in dict.fromkeys(chosen):
        bench = BENCHMARKS[key]
        print(f"-- running benchmark {key} ({bench.__name__})", flush=True)
        t0 = time.time()
        try:
            produced = bench(sizes)
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            traceback.print_exc()
            produced = [Result(f"{key} {bench.__name__}", error=f"{type(exc).__name__}: {exc}".strip()[:500])]
        for result in produced:
            result.seconds = time.time() - t0
            result.load = loadavg()
        results.extend(produced)
        print(plain(produced), flush=True)
    loads["after"] = loadavg()
    if args.profile:
        import subprocess

        from common import pg_reachable

        trials = str(min(sizes.own_trials, 500))
        for backend in ("sqlite", "postgres") if pg_reachable() else ("sqlite",):
            print(f"-- profiling the own-cost workload ({trials} trials, {backend})", flush=True)
            subprocess.run(
                [PY, str(BENCH / "profiling.py"), "--trials", trials, "--backend", backend], check=False
            )
    output = Path(args.output)
    write_results(output, mode_name, info, results, loads)
    print()
    print("\n".join(table(results)))
    print(f"\n{CAVEAT}\nload average before {loads['before']}, after {loads['after']}; written to {output}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
