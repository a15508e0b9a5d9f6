"""The six benchmarks of issue 5, each beside its anchor measured in the same run.

Every benchmark runs the real CLI (`python -m mlflow_sweeper sweep`) in its own process, reads
the trial start times back from the Optuna storage (`datetime_start`, stamped by the agent when it
creates the trial) and returns table rows plus the raw figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common import (
    PROJECT,
    anchor,
    check_exit,
    complete_times,
    cpu_rate,
    gaps,
    head_tail,
    median,
    optuna_trials,
    pg_databases,
    pg_reachable,
    sqlite_url,
    start_agent,
    start_times,
    workdir,
    write_config,
)

SLEEP_COMMAND = 'sh -c "sleep 1" sleep'  # the parameters land in $1.. and are ignored


@dataclass
class Sizes:
    own_trials: int  # benchmarks 1 and 6: points of the `true` grid
    floor_trials: int  # the floor anchors (Optuna random, MLflow run, spawn)
    launch_trials: int  # benchmark 2, for each of sweeper / bare / projects.run
    per_worker: int  # benchmark 3: sleep trials per worker at each -j
    jobs: tuple[int, ...]
    big_points: int  # benchmark 4
    big_trials: int
    agents_trials: int  # benchmark 5, 4 agents x 4 workers
    single_trials: int  # benchmark 5 anchor: one agent, one worker
    startup_reps: int = 2  # benchmark 4: interleaved start-up measurements
    timeout: float = 3600.0


QUICK = Sizes(
    own_trials=300,
    floor_trials=100,
    launch_trials=6,
    per_worker=5,
    jobs=(1, 4, 16),
    big_points=100_000,
    big_trials=200,
    agents_trials=128,
    single_trials=8,
    timeout=900.0,
)
FULL = Sizes(
    own_trials=2000,
    floor_trials=300,
    launch_trials=20,
    per_worker=20,
    jobs=(1, 4, 16),
    big_points=100_000,
    big_trials=1000,
    agents_trials=400,
    single_trials=20,
    startup_reps=3,
    timeout=5400.0,
)


@dataclass
class Row:
    bench: str
    figure: str
    measured: str
    anchor: str
    goal: str
    met: bool | None = None


@dataclass
class Result:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    seconds: float = 0.0
    load: str = ""
    error: str | None = None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def sec(seconds: float) -> str:
    return f"{seconds:.2f} s"


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def _grid(n: int) -> dict:
    return {"x": list(range(n))}


# ---- 1 and 6: own cost per trial, memory -------------------------------------------------------------


def own_cost(sizes: Sizes) -> list[Result]:
    """`command: "true"` (no spec) over an N-point grid on SQLite; the agent's RSS sampled throughout."""
    n = sizes.own_trials
    with workdir("own") as work:
        config = write_config(
            work,
            command="true",
            parameters={"x": {"low": 0, "high": n - 1, "type": "int"}},
            optuna_storage="sqlite:///optuna.db",
            mlflow_storage="sqlite:///mlflow.db",
        )
        agent = start_agent(config)
        check_exit(agent, agent.wait(sizes.timeout), "own cost")
        ended = time.time()
        trials = optuna_trials(sqlite_url(work / "optuna.db"))
        starts = start_times(trials)
        per_trial = gaps(starts)
        first, last, ratio = head_tail(per_trial)
        grid_run = anchor("grid", n, n, sqlite_url(work / "grid.db"), cwd=work, timeout=sizes.timeout)
        grid_gaps = gaps(grid_run["starts"])
        g_first, g_last, g_ratio = head_tail(grid_gaps)
        floor_n = sizes.floor_trials
        rand = median(anchor("random", floor_n, sqlite_url(work / "random.db"), cwd=work)["durations"])
        mlf = median(anchor("mlflow", floor_n, sqlite_url(work / "floor-mlflow.db"), cwd=work)["durations"])
        spawn = median(anchor("spawn", floor_n, cwd=work)["durations"])
        samples = agent.samples
        cpu_per_trial, _ = cpu_rate(samples, 2, n)
    floor = rand + mlf + spawn
    gap = median(per_trial)
    own = Result("1 own cost per trial")
    own.rows = [
        Row(
            "1",
            f"median gap between trial starts, `true` x {n} grid, SQLite",
            ms(gap),
            f"Optuna GridSampler {ms(median(grid_gaps))}; floor {ms(floor)} (Optuna random ask/tell "
            f"{ms(rand)} + MLflow run create/params/end {ms(mlf)} + spawn `true` {ms(spawn)})",
            "<= 40 ms",
            gap <= 0.040,
        ),
        Row(
            "1",
            "agent CPU (user+sys) per trial",
            ms(cpu_per_trial),
            "the rest of the gap is waiting (fsync, locks, the child)",
            "",
            None,
        ),
        Row(
            "1",
            "last 100 / first 100 (median gaps)",
            f"{ratio:.2f} ({ms(first)} -> {ms(last)})",
            f"GridSampler {g_ratio:.2f} ({ms(g_first)} -> {ms(g_last)})",
            "<= 1.2",
            ratio <= 1.2,
        ),
    ]
    own.details = {
        "trials": len(trials),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "median_gap_s": gap,
        "first100_s": first,
        "last100_s": last,
        "agent_start_to_first_trial_s": starts[0] - agent.started if starts else None,
        "agent_wall_s": ended - agent.started,
        "agent_cpu_per_trial_s": cpu_per_trial,
        "gridsampler": {"median_gap_s": median(grid_gaps), "first100_s": g_first, "last100_s": g_last},
        "floor": {"optuna_random_s": rand, "mlflow_run_s": mlf, "spawn_true_s": spawn},
    }
    memory = Result("6 memory")
    at_100 = next((rss for _, count, rss, _ in samples if count >= 100), None)
    at_n = next((rss for _, count, rss, _ in samples if count >= n), None)
    peak = max((rss for _, _, rss, _ in samples), default=None)
    peak_at = next(((t - agent.started, count) for t, count, rss, _ in samples if rss == peak), None)
    g_rss = grid_run["rss"]
    if at_100 and at_n:
        mem_ratio = at_n / at_100
        memory.rows = [
            Row(
                "6",
                f"agent RSS after {n} trials / after 100",
                f"{mem_ratio:.2f} ({mib(at_100)} -> {mib(at_n)}, peak {mib(peak)})",
                f"GridSampler process {g_rss[str(n)] / g_rss['100']:.2f} ({mib(g_rss['100'])} -> "
                f"{mib(g_rss[str(n)])})",
                "<= 1.2",
                mem_ratio <= 1.2,
            ),
        ]
    else:
        memory.error = f"too few RSS samples ({len(samples)}) with trial counts; was the log format changed?"
    memory.details = {
        "rss_after_100": at_100,
        f"rss_after_{n}": at_n,
        "rss_peak": peak,
        "rss_peak_at_s_trials": peak_at,  # seconds after the agent started, trials started by then
        "agent_wall_s": own.details.get("agent_wall_s"),
        "samples": len(samples),
        "gridsampler_rss": g_rss,
        "note": "sampled during benchmark 1's run (same agent, same sweep)",
    }
    return [own, memory]


# ---- 2: near-bare launch ------------------------------------------------------------------------------


def launch(sizes: Sizes) -> list[Result]:
    """A trivial Python trial through an MLflow entry point vs bare vs projects.run(synchronous=False)."""
    n = sizes.launch_trials
    with workdir("launch") as work:
        anchor("initdb", sqlite_url(work / "mlflow.db"), cwd=work)
        config = write_config(
            work,
            entry_point="train",
            project=str(PROJECT),
            parameters=_grid(n),
            spec={"direction": "maximize", "metric": "m"},
            optuna_storage="sqlite:///optuna.db",
            mlflow_storage="sqlite:///mlflow.db",
        )
        # The lean bare loop runs before and after the sweep, so a burst of load hits both alike.
        lean_before = anchor("bare", n, PROJECT, sqlite_url(work / "lean.db"), "resume", cwd=work)
        agent = start_agent(config)
        check_exit(agent, agent.wait(sizes.timeout), "launch")
        trials = optuna_trials(sqlite_url(work / "optuna.db"))
        sweeper = median(gaps(start_times(trials)))
        complete = sum(t.state.name == "COMPLETE" for t in trials)
        lean_after = anchor("bare", n, PROJECT, sqlite_url(work / "lean.db"), "resume", cwd=work)
        lean = median(gaps(lean_before["starts"]) + gaps(lean_after["starts"]))
        user_run = anchor("bare", n, PROJECT, sqlite_url(work / "bare.db"), "new", cwd=work)
        user = median(gaps(user_run["starts"]))
        proj_run = anchor("projects", n, PROJECT, sqlite_url(work / "projects.db"), cwd=work)
        projects = median(gaps(proj_run["starts"]))
    ratio = sweeper / lean
    result = Result("2 near-bare launch")
    result.rows = [
        Row(
            "2",
            f"gap between trial starts, trivial entry-point trial x {n}",
            sec(sweeper),
            f"bare, run made by the loop: {sec(lean)}; bare, run made by the script: {sec(user)}; "
            f"mlflow.projects.run(synchronous=False): {sec(projects)}",
            "",
            None,
        ),
        Row(
            "2",
            "sweeper / bare (run made by the loop, before and after the sweep)",
            f"{ratio:.2f}",
            f"sweeper / bare (script makes its run) {sweeper / user:.2f}; projects.run / bare "
            f"{projects / lean:.2f}",
            "<= 1.05",
            ratio <= 1.05,
        ),
    ]
    result.details = {
        "trials": n,
        "complete": complete,
        "sweeper_gap_s": sweeper,
        "bare_run_made_by_loop_gap_s": lean,
        "bare_run_made_by_loop_before_after_s": [
            median(gaps(lean_before["starts"])),
            median(gaps(lean_after["starts"])),
        ],
        "bare_run_made_by_script_gap_s": user,
        "projects_run_gap_s": projects,
    }
    if complete != n:
        result.error = f"only {complete} of {n} entry-point trials completed"
    return [result]


# ---- 3: scaling with -j ------------------------------------------------------------------------------


def _throughput(trials) -> tuple[float, float]:
    """Completed trials / (last completion - first start): what a user waits for."""
    done = [t for t in trials if t.state.name == "COMPLETE"]
    span = max(complete_times(done)) - min(start_times(done))
    return len(done) / span, span


def _rate(starts: list[float], begin: int, end: int, workers: int) -> float:
    """Trial starts per second from starts[begin] over a whole number of rounds of `workers`
    starts, at most to starts[end]. Starts come in rounds (every worker starts one trial per
    cycle), so a window of whole rounds counts each worker's cycles fairly."""
    rounds = (end - begin) // workers
    if begin < 0 or rounds < 1:
        return float("nan")  # too few trials for a window
    stop = begin + rounds * workers
    span = starts[stop] - starts[begin]
    return (stop - begin) / span if span > 0 else float("nan")


def _steady(trials, jobs: int) -> float:
    """Starts per second with every worker busy: without the first and the last round of starts
    (the ramp-up, while workers take their first trials, and the wind-down)."""
    starts = start_times(trials)
    skip = jobs if jobs > 1 else 0
    return _rate(starts, skip, len(starts) - 1 - skip, jobs)


def _steady_all_agents(trials, workers: int) -> float:
    """Starts per second while every agent runs: from the last agent's first trial start to the
    first agent's last trial start (agents start up at different speeds)."""
    by_agent: dict[str, list[float]] = {}
    for trial in trials:
        if trial.datetime_start is not None:
            owner = str(trial.system_attrs.get("sweeper:agent", "?"))
            by_agent.setdefault(owner, []).append(trial.datetime_start.timestamp())
    if not by_agent:
        return float("nan")
    begin = max(min(v) for v in by_agent.values())
    end = min(max(v) for v in by_agent.values())
    starts = start_times(trials)
    inside = [i for i, t in enumerate(starts) if begin <= t <= end]
    return _rate(starts, inside[0], inside[-1], workers) if inside else float("nan")


def scaling(sizes: Sizes) -> list[Result]:
    result = Result("3 scaling with -j")
    for jobs in sizes.jobs:
        n = sizes.per_worker * jobs
        with workdir(f"scale{jobs}") as work:
            anchor("initdb", sqlite_url(work / "mlflow.db"), cwd=work)
            config = write_config(
                work,
                command=SLEEP_COMMAND,
                parameters=_grid(n),
                optuna_storage="sqlite:///optuna.db",
                mlflow_storage="sqlite:///mlflow.db",
            )
            agent = start_agent(config, jobs=jobs)
            check_exit(agent, agent.wait(sizes.timeout), f"-j {jobs}")
            trials = optuna_trials(sqlite_url(work / "optuna.db"))
            rate, span = _throughput(trials)
            steady = _steady(trials, jobs)
            cpu_per_trial, cores = cpu_rate(agent.samples, 1, n)
            spans = anchor("pool", jobs, n, 1, cwd=work)["spans"]
        bare_rate = n / (max(e for _, e in spans) - min(s for s, _ in spans))
        result.rows.append(
            Row(
                "3",
                f"throughput, 1 s sleep trials, -j {jobs} ({n} trials): steady (makespan)",
                f"{steady:.2f}/s = {steady / jobs:.2f} x j ({rate:.2f}/s = {rate / jobs:.2f} x j); "
                f"agent CPU {ms(cpu_per_trial)}/trial, {cores:.2f} cores busy",
                f"bare pool of {jobs}: {bare_rate:.2f}/s",
                ">= 0.9 x j (steady)",
                (steady if steady == steady else rate) >= 0.9 * jobs,  # makespan if no window
            )
        )
        result.details[f"j{jobs}"] = {
            "trials": n,
            "complete": len(trials),
            "span_s": span,
            "throughput": rate,
            "steady_throughput": steady,
            "bare_pool": bare_rate,
            "agent_cpu_per_trial_s": cpu_per_trial,
            "agent_cores_busy": cores,
        }
    return [result]


# ---- 4: big spaces -----------------------------------------------------------------------------------


def _axes(a: int, b: int, c: int) -> dict:
    """An a x b x c grid: an int range, a list of strings and a stepped float range."""
    return {
        "a": {"low": 0, "high": a - 1, "type": "int"},
        "b": [f"b{i}" for i in range(b)],
        "c": {"low": 0.0, "high": round(0.1 * (c - 1), 1), "step": 0.1},
    }


def big_space(sizes: Sizes) -> list[Result]:
    """The 100,000-point grid vs a small grid of the same shape: start-up, then per-trial cost."""
    points, n = sizes.big_points, sizes.big_trials
    shapes = {"big": (points // 1000, 100, 10), "small": (max(1, n // 100), 10, 10)}
    firsts: dict[str, list[float]] = {"big": [], "small": [], "gridsampler": []}
    per_trial: dict[str, list[float]] = {}
    with workdir("big") as work:
        for rep in range(sizes.startup_reps):  # interleaved repetitions: start-up times are noisy
            last = rep == sizes.startup_reps - 1
            for label in ("small", "big"):
                sub = work / f"{label}{rep}"
                sub.mkdir()
                anchor("initdb", sqlite_url(sub / "mlflow.db"), cwd=sub)
                config = write_config(
                    sub,
                    command="true",
                    parameters=_axes(*shapes[label]),
                    optuna_storage="sqlite:///optuna.db",
                    mlflow_storage="sqlite:///mlflow.db",
                )
                agent = start_agent(config, count=n if last else 3)
                check_exit(agent, agent.wait(sizes.timeout), f"{label} grid")
                starts = start_times(optuna_trials(sqlite_url(sub / "optuna.db")))
                firsts[label].append(starts[0] - agent.started)
                if last:
                    per_trial[label] = gaps(starts)
            grid_run = anchor("grid", 1, points, sqlite_url(work / f"grid{rep}.db"), cwd=work)
            firsts["gridsampler"].append(grid_run["starts"][0] - grid_run["process_started"])
    best = {k: min(v) for k, v in firsts.items()}
    first, last_, ratio = head_tail(per_trial["big"])
    s_first, s_last, s_ratio = head_tail(per_trial["small"])
    small_points = shapes["small"][0] * 100
    result = Result("4 big spaces")

    def runs(label: str) -> str:
        return ", ".join(f"{v:.2f}" for v in firsts[label])

    result.rows = [
        Row(
            "4",
            f"agent start -> first trial, {points:,}-point grid (best of {runs('big')} s)",
            sec(best["big"]),
            f"{small_points}-point grid {sec(best['small'])} ({runs('small')}); Optuna GridSampler, process "
            f"start -> first trial on the {points:,} points {sec(best['gridsampler'])}",
            "<= 5 s",
            best["big"] <= 5.0,
        ),
        Row(
            "4",
            f"median gap, first {n} trials of the {points:,}-point grid",
            ms(median(per_trial["big"])),
            f"{small_points}-point grid of the same shape {ms(median(per_trial['small']))}",
            "flat",
            None,
        ),
        Row(
            "4",
            "last 100 / first 100",
            f"{ratio:.2f} ({ms(first)} -> {ms(last_)})",
            f"small grid {s_ratio:.2f} ({ms(s_first)} -> {ms(s_last)})",
            "<= 1.2",
            ratio <= 1.2,
        ),
    ]
    result.details = {
        "points": points,
        "small_points": small_points,
        "first_trial_s": firsts,
        "median_gap_s": {k: median(v) for k, v in per_trial.items()},
        "big_first100_s": first,
        "big_last100_s": last_,
        "note": "MLflow store tables created before the clock starts (as a user's existing store)",
    }
    return [result]


# ---- 5: many agents on PostgreSQL ---------------------------------------------------------------------


def many_agents(sizes: Sizes) -> list[Result]:
    result = Result("5 many agents")
    if not pg_reachable():
        result.error = "PostgreSQL is not reachable at 127.0.0.1:5432; skipped"
        return [result]
    n, n1 = sizes.agents_trials, sizes.single_trials
    with workdir("agents") as work, pg_databases("opt1", "mlf1", "opt16", "mlf16") as urls:
        opt1, mlf1, opt16, mlf16 = urls
        # The anchor: one agent, one worker, on its own pair of databases.
        single_dir = work / "single"
        single_dir.mkdir()
        anchor("initdb", mlf1, cwd=work)
        config = write_config(
            single_dir, command=SLEEP_COMMAND, parameters=_grid(n1), optuna_storage=opt1, mlflow_storage=mlf1
        )
        agent = start_agent(config)
        check_exit(agent, agent.wait(sizes.timeout), "single worker")
        single_trials = optuna_trials(opt1)
        single_starts = start_times(single_trials)
        single_rate = _rate(single_starts, 0, len(single_starts) - 1, 1)  # one worker: 1 / its cycle
        single_makespan_rate, _ = _throughput(single_trials)
        # 4 agents x 4 workers, started together on a fresh sweep.
        anchor("initdb", mlf16, cwd=work)
        config = write_config(
            work, command=SLEEP_COMMAND, parameters=_grid(n), optuna_storage=opt16, mlflow_storage=mlf16
        )
        agents = [start_agent(config, jobs=4, log_name=f"agent{i}.log") for i in range(4)]
        codes = [a.wait(sizes.timeout) for a in agents]
        trials = optuna_trials(opt16)
        rate, span = _throughput(trials)
        steady = _steady_all_agents(trials, 16)
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        per_point: dict = {}
        for trial in complete:
            per_point[trial.params["x"]] = per_point.get(trial.params["x"], 0) + 1
        duplicates = sum(c - 1 for c in per_point.values())
        missing = n - len(per_point)
        mlflow_dups, parents = _mlflow_check(mlf16)
        tails = [a.tail(8) for a, code in zip(agents, codes, strict=True) if code]
    # Each agent's CPU between its first and its last trial start (no start-up, no wind-down).
    rates = [cpu_rate(a.samples, 1, a.trials_started) for a in agents]
    cpu_per_trial = median([r[0] for r in rates])
    cores = sum(r[1] for r in rates)
    ideal = 16 * single_rate
    result.rows = [
        Row(
            "5",
            f"throughput, 4 agents x 4 workers, {n} sleep trials, PostgreSQL: all agents up (makespan)",
            f"{steady:.2f}/s = {steady / ideal:.2f} x ideal ({rate:.2f}/s = {rate / ideal:.2f} x); "
            f"agent CPU {ms(cpu_per_trial)}/trial, 4 agents {cores:.2f} cores busy",
            f"16 x single worker = {ideal:.2f}/s (single {single_rate:.3f}/s)",
            "close to 16 x single (>= 0.9 x, all agents up)",
            (steady if steady == steady else rate) >= 0.9 * ideal,
        ),
        Row(
            "5",
            "duplicate / missing grid points (Optuna, MLflow)",
            f"{duplicates} / {missing}, MLflow {mlflow_dups} dup, {parents} parent run(s)",
            "",
            "0 / 0, 1 parent",
            duplicates == 0 and missing == 0 and mlflow_dups == 0 and parents == 1,
        ),
    ]
    result.details = {
        "trials": n,
        "complete": len(complete),
        "span_s": span,
        "throughput": rate,
        "steady_throughput": steady,
        "single_worker_throughput": single_rate,
        "single_worker_makespan_throughput": single_makespan_rate,
        "agent_exit_codes": codes,
        "trials_started_per_agent": [a.trials_started for a in agents],
        "agents_cpu_per_trial_s": cpu_per_trial,
        "duplicates": duplicates,
        "missing": missing,
        "mlflow_duplicates": mlflow_dups,
        "parents": parents,
    }
    if any(codes):
        result.error = f"agent exit codes {codes}; the first failing agent's log ends:\n{tails[0]}"
    return [result]


def _mlflow_check(uri: str) -> tuple[int, int]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bench")
    runs = client.search_runs([experiment.experiment_id], max_results=50000)
    finished: dict = {}
    parents = 0
    for run in runs:
        role = run.data.tags.get("sweeper.role")
        if role == "parent":
            parents += 1
        elif role == "trial" and run.info.status == "FINISHED":
            x = run.data.params.get("x")
            finished[x] = finished.get(x, 0) + 1
    return sum(c - 1 for c in finished.values()), parents


BENCHMARKS = {
    "1": own_cost,  # also yields benchmark 6 (memory), sampled in the same run
    "2": launch,
    "3": scaling,
    "4": big_space,
    "5": many_agents,
}
