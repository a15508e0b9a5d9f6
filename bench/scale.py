"""Beyond one machine, measured: the gRPC proxy at scale, an agent's connections, idle agents' cost,
claims at scale. One command writes bench/SCALE.md, with the machine noted:

    python bench/scale.py --quick   # a few minutes on a small machine
    python bench/scale.py --full    # 32 agents x -j 4, 200 idle agents, 1,000 claimers

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and the [grpc] extra.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH,
    OBJECTIVE,
    PY,
    clean_env,
    loadavg,
    machine,
    pg_admin,
    pg_databases,
    pg_reachable,
    start_agent,
    workdir,
    write_config,
)

RESULTS = BENCH / "SCALE.md"
APP = "mlflow-sweeper-agent"
QUICK = {"agents": 6, "jobs": 4, "trials": 48, "direct_jobs": (1, 4, 16), "idle_real": 2,
         "idle_light": 200, "idle_seconds": 40, "claimers": 100, "claims": 200, "procs": 2}  # fmt: skip
FULL = {"agents": 32, "jobs": 4, "trials": 512, "direct_jobs": (1, 4, 16), "idle_real": 4,
        "idle_light": 200, "idle_seconds": 90, "claimers": 1000, "claims": 2000, "procs": 4}  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def pg_connections(databases: list[str], application: str | None = None) -> int:
    names = ",".join(f"'{d}'" for d in databases)
    where = f"datname IN ({names})" + (f" AND application_name = '{application}'" if application else "")
    return pg_admin(f"SELECT count(*) FROM pg_stat_activity WHERE {where}")[0][0]


def pg_transactions(database: str) -> int:
    row = pg_admin(f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'")
    return int(row[0][0])


def postgres_cpu_seconds() -> float:
    """CPU seconds of PostgreSQL: every live server process, plus the backends that have exited
    (counted in their parent's children times)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "ppid"]):
        if not (proc.info["name"] or "").startswith("postgres"):
            continue
        with suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
            parent = psutil.Process(proc.info["ppid"])
            if not (parent.name() or "").startswith("postgres"):  # the postmaster
                total += times.children_user + times.children_system
    return total


class Sampler:
    """The peak of `measure()` sampled every `every` seconds in a thread."""

    def __init__(self, measure, every: float = 0.2):
        self.measure, self.every, self.peak = measure, every, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            with suppress(Exception):
                self.peak = max(self.peak, self.measure())
            self.stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@contextmanager
def background(argv: list[str], log: Path, env: dict | None = None):
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=clean_env(env), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        with suppress(psutil.Error):
            for child in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
                child.kill()
        proc.wait(timeout=30)


@contextmanager
def proxy(database: str, work: Path):
    from mlflow_sweeper.storages.grpc import open_grpc_storage

    port = free_port()
    url = f"grpc://127.0.0.1:{port}"
    argv = [PY, "-m", "mlflow_sweeper", "proxy", database, "--port", str(port)]
    with background(argv, work / "proxy.log") as process:
        open_grpc_storage(url, ready_seconds=120).close()
        PROXIES[url] = psutil.Process(process.pid)
        yield url


PROXIES: dict[str, psutil.Process] = {}  # url: the proxy serving it, for its CPU time


def cpu_by_process(process: psutil.Process) -> dict[int, float]:
    """CPU seconds of a process and of each of its children (the proxy's worker processes)."""
    seconds = {}
    for each in [process, *process.children(recursive=True)]:
        with suppress(psutil.Error):
            times = each.cpu_times()
            seconds[each.pid] = times.user + times.system
    return seconds


def cpu_seconds(process: psutil.Process) -> float:
    return sum(cpu_by_process(process).values())


@contextmanager
def mlflow_server(database: str, work: Path):
    """`mlflow server`, one gunicorn worker with 8 threads, on PostgreSQL with a pool of 9.

    MLflow's `log_batch` holds two pooled connections at once (a session inside its session): a
    server whose pool is not larger than the requests it serves at once can stall every request
    on the pool (each holding one connection, waiting for a second) until the pool times out.
    8 threads and 9 connections always leave one request its second connection."""
    port = free_port()
    argv = [PY, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--gunicorn-opts", "--threads 8",
            "--backend-store-uri", database,
            "--default-artifact-root", (work / "artifacts").as_uri()]  # fmt: skip
    # 8 + 1: MLflow reads an overflow of 0 as "use its default" (10)
    env = {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "8", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "1"}
    with background(argv, work / "mlflow-server.log", env):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with suppress(OSError), urllib.request.urlopen(url + "/health", timeout=2):
                break
            time.sleep(0.5)
        yield url


TRIAL_SLEEP = 2.0  # seconds of "training" per trial, then one metric logged over REST


def trial_keys(n: int) -> dict:
    return {
        # parameters are appended as x=VALUE, which objective.py takes as they are
        "command": f"sh -c 'sleep {TRIAL_SLEEP}; exec {PY} {OBJECTIVE} fn=sphere \"$@\"' sh",
        "parameters": {"x": list(range(n))},
        "spec": {"direction": "minimize", "metric": "value"},
    }


# ---- 1. agents through the proxy and a tracking server --------------------------------------------


def proxy_sweep(p: dict) -> dict:
    """N agents x -j 4 through one proxy and one `mlflow server --workers 1`, both on PostgreSQL.

    Throughput is taken over the trials' own span (first start to last end, from Optuna), so the
    agents' start-up (each imports MLflow: seconds of CPU on a small machine) is reported apart."""
    import optuna
    from mlflow.tracking import MlflowClient

    with workdir("scale-proxy") as work, pg_databases("optuna", "mlflow") as (optuna_db, mlflow_db):
        with proxy(optuna_db, work) as grpc_url, mlflow_server(mlflow_db, work) as http_url:
            configs = []
            for i in range(p["agents"]):
                d = work / f"agent{i}"
                d.mkdir()
                configs.append(write_config(d, optuna_storage=grpc_url, mlflow_storage=http_url,
                                            **trial_keys(p["trials"])))  # fmt: skip
            per_trial = trial_seconds(http_url, work)
            dbs = [db_name(optuna_db), db_name(mlflow_db)]
            with Sampler(lambda: pg_connections(dbs)) as peak:
                t0 = time.time()
                runs = [start_agent(c, jobs=p["jobs"], sample_every=None) for c in configs]
                codes = [r.process.wait(timeout=3600) for r in runs]
                seconds = time.time() - t0
        storage = optuna.storages.RDBStorage(optuna_db)
        trials = storage.get_all_trials(storage.get_study_id_from_name("bench/s"), deepcopy=False)
        storage.engine.dispose()
        client = MlflowClient(tracking_uri=mlflow_db)
        experiment = client.get_experiment_by_name("bench").experiment_id
        runs_all = client.search_runs([experiment], max_results=5000)
    states = Counter(t.state.name for t in trials)
    points = Counter(t.params["x"] for t in trials if t.state.name == "COMPLETE")
    parents = [r for r in runs_all if r.data.tags.get("sweeper.role") == "parent"]
    first = min(t.datetime_start.timestamp() for t in trials)
    last = max(t.datetime_complete.timestamp() for t in trials if t.datetime_complete)
    span = last - first
    slots = p["agents"] * p["jobs"]
    ideal = math.ceil(p["trials"] / slots) * per_trial
    return {
        "agents": p["agents"], "jobs": p["jobs"], "trials": p["trials"], "exit codes": dict(Counter(codes)),
        "states": dict(states), "duplicates": sum(n - 1 for n in points.values()),
        "missing": p["trials"] - len(points), "parents": len(parents),
        "peak PostgreSQL connections (goal < 30)": peak.peak,
        "wall seconds, agents started to all exited": seconds,
        "agents' start-up (first trial start - agents started)": first - t0,
        "trials' span (first start to last end)": span,
        "one trial alone (sleep + Python + one REST call)": per_trial,
        "ideal span (ceil(trials / slots) x one trial)": ideal,
        "trials/s": p["trials"] / span, "ideal trials/s": p["trials"] / ideal,
        "throughput / ideal": ideal / span,
    }  # fmt: skip


def trial_seconds(tracking_uri: str, work: Path) -> float:
    """One trial's wall time alone, its run created beforehand as the sweeper does."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = client.create_run(client.create_experiment("bare")).info.run_id
    env = clean_env({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id})
    command = trial_keys(1)["command"] + " x=1"
    t0 = time.monotonic()
    subprocess.run(command, shell=True, cwd=work, env=env, check=True, capture_output=True)
    return time.monotonic() - t0


# ---- 2. direct mode: connections per agent ---------------------------------------------------------


def direct_connections(jobs: int, baseline: str | None = None) -> int:
    """Peak connections of one agent; with `baseline`, of another checkout's agent (whose connections
    carry no name: every connection to the two databases counts, the trials hold none)."""
    with workdir(f"scale-direct{jobs}") as work, pg_databases("optuna", "mlflow") as (optuna_db, mlflow_db):
        config = write_config(work, optuna_storage=optuna_db, mlflow_storage=mlflow_db,
                              command="sleep 2", parameters={"x": list(range(2 * jobs))})  # fmt: skip
        dbs = [db_name(optuna_db), db_name(mlflow_db)]
        env = {"PYTHONPATH": baseline} if baseline else None
        with Sampler(lambda: pg_connections(dbs, None if baseline else APP), every=0.05) as peak:
            start_agent(config, jobs=jobs, sample_every=None, env=env).process.wait(timeout=600)
        return peak.peak


# ---- 3. idle agents ----------------------------------------------------------------------------------


def light_idle_agents(
    url: str, config_path: str, n: int, seconds: float, per_worker: int, longest: float
) -> None:
    """`n` idle agents in this process, each as the agent's workers look for work: a claim, then
    "every slot claimed?" and "anything active?", then the backoff (one look per agent)."""
    import optuna

    from mlflow_sweeper.agent.idle import IdleBackoff
    from mlflow_sweeper.config import load_config
    from mlflow_sweeper.coordination import SweepStudy, agent_id
    from mlflow_sweeper.search.algorithms import PointSource
    from mlflow_sweeper.storages import open_optuna_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = load_config(config_path)
    storage = open_optuna_storage(url, 1, 4)
    stop = threading.Event()

    def agent() -> None:
        study = SweepStudy(storage, config, PointSource(config), agent_id())
        study.find()
        idle = IdleBackoff(longest=longest)
        while not stop.is_set():
            assert study.claim() is None, "a light idle agent found work"
            study.slots_exhausted()
            study.has_active()
            idle.wait(stop)

    threads = [threading.Thread(target=agent, daemon=True) for _ in range(n * per_worker)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()


def idle_cost(p: dict) -> dict:
    """A sweep whose every trial is held by one busy agent; idle agents wait beside it."""
    with workdir("scale-idle") as work, pg_databases("optuna", "mlflow") as (optuna_db, mlflow_db):
        gate = work / "go"
        config = write_config(work, optuna_storage=optuna_db, mlflow_storage=mlflow_db, stale_after=600,
                              command=f"sh -c 'while [ ! -e {gate} ]; do sleep 0.5; done' sh",
                              parameters={"x": [1, 2]})  # fmt: skip
        busy = start_agent(config, jobs=2, sample_every=None, log_name="busy.log")
        while busy.trials_started < 2:
            time.sleep(0.2)
        database = db_name(optuna_db)
        out = {}
        idle_dirs = []
        for i in range(p["idle_real"]):
            d = work / f"idle{i}"
            d.mkdir()
            idle_dirs.append(write_config(d, **yaml.safe_load(config.read_text())))
        real = [start_agent(c, jobs=4, sample_every=None) for c in idle_dirs]
        time.sleep(30)  # start-up and the backoff to its longest delay
        out["real agents"] = p["idle_real"]
        rate = per_agent_rate(database, p["idle_real"], p["idle_seconds"])
        out["transactions/s per real idle agent (-j 4)"] = rate
        for r in real:
            r.process.terminate()
            r.process.wait(timeout=60)
        # Light agents: the same coordination calls, many per process; before = 4 workers each polling
        # every 0.5 s, after = one look per agent with backoff.
        for label, per_worker, backoff in (("after", 1, True), ("before", 4, False)):
            n = p["idle_light"] if backoff else max(10, p["idle_light"] // 10)
            procs = launch_light(optuna_db, config, n, p, per_worker, backoff)
            time.sleep(25 if backoff else 5)
            t0, q0, c0 = time.monotonic(), pg_transactions(database), postgres_cpu_seconds()
            time.sleep(p["idle_seconds"] / 2)
            dt = time.monotonic() - t0
            rate = (pg_transactions(database) - q0) / dt
            cpu = (postgres_cpu_seconds() - c0) / dt
            for proc in procs:
                proc.join()
            out[f"{label}: light agents"] = n
            out[f"{label}: transactions/s per idle agent"] = rate / n
            out[f"{label}: PostgreSQL CPU (cores)"] = cpu
        gate.touch()
        busy.process.wait(timeout=300)
    return out


def per_agent_rate(database: str, agents: int, seconds: float) -> float:
    q0 = pg_transactions(database)
    time.sleep(seconds)
    return (pg_transactions(database) - q0) / seconds / agents


def launch_light(url: str, config: Path, n: int, p: dict, per_worker: int, backoff: bool) -> list:
    from mlflow_sweeper.agent import idle

    longest = idle.LONGEST_SECONDS if backoff else idle.FIRST_SECONDS  # before: a fixed 0.5 s poll
    seconds = (25 if backoff else 5) + p["idle_seconds"] / 2 + 2
    ctx = multiprocessing.get_context("spawn")  # no gRPC or database state inherited
    args = (url, str(config), n // p["procs"], seconds, per_worker, longest)
    procs = [ctx.Process(target=light_idle_agents, args=args) for _ in range(p["procs"])]
    for proc in procs:
        proc.start()
    return procs


# ---- 4. claims at scale -------------------------------------------------------------------------------


CONNECTIONS_PER_PROCESS = 8


def claimers(url: str, config_path: str, n: int, barrier_at: float, results) -> None:
    import optuna

    from mlflow_sweeper.config import load_config
    from mlflow_sweeper.coordination import SweepStudy, agent_id
    from mlflow_sweeper.search.algorithms import PointSource
    from mlflow_sweeper.storages import open_optuna_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = load_config(config_path)
    # Agents each have their own connection; these claimers share a few per process, so that the
    # kernel spreads them over the proxy's worker processes as it would spread agents.
    storages = [open_optuna_storage(url) for _ in range(CONNECTIONS_PER_PROCESS)]
    slots: list[int] = []
    ended: list[float] = []  # when each claimed trial completed
    exits: list[float] = []  # when each claimer found nothing left and left
    lock = threading.Lock()

    def claimer(storage) -> None:
        study = SweepStudy(storage, config, PointSource(config), agent_id())
        study.find()
        time.sleep(max(0.0, barrier_at - time.time()))
        while (work := study.claim()) is not None:
            study.complete(work, float(work.slot))
            with lock:
                slots.append(work.slot)
                ended.append(time.time())
        with lock:
            exits.append(time.time())

    threads = [threading.Thread(target=claimer, args=(storages[i % len(storages)],)) for i in range(n)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, barrier_at - time.time()))
    cpu_at_release = time.process_time()
    for thread in threads:
        thread.join()
    results.put((slots, ended, exits, time.process_time() - cpu_at_release))


def claims_at_scale(p: dict) -> dict:
    from mlflow_sweeper.config import load_config
    from mlflow_sweeper.coordination import SweepStudy, agent_id
    from mlflow_sweeper.search.algorithms import PointSource
    from mlflow_sweeper.storages import open_optuna_storage

    with (
        workdir("scale-claims") as work,
        pg_databases("optuna") as (optuna_db,),
        proxy(optuna_db, work) as grpc_url,
    ):
        config = write_config(work, optuna_storage=grpc_url, mlflow_storage=f"sqlite:///{work / 'm.db'}",
                              command="true", parameters={"x": list(range(p["claims"]))})  # fmt: skip
        loaded = load_config(config)
        study = SweepStudy(open_optuna_storage(grpc_url), loaded, PointSource(loaded), agent_id())
        study.create_or_attach(lambda: "parent", lambda run: "RUNNING")
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        start_at = time.time() + 15 + p["claimers"] / 50
        per = p["claimers"] // p["procs"]
        procs = [ctx.Process(target=claimers, args=(grpc_url, str(config), per, start_at, results))
                 for _ in range(p["procs"])]  # fmt: skip
        for proc in procs:
            proc.start()
        time.sleep(max(0.0, start_at - time.time()))
        proxy_cpu, pg_cpu = cpu_by_process(PROXIES[grpc_url]), postgres_cpu_seconds()
        slots, ended, exits, claimer_cpu = [], [], [], 0.0
        for _ in procs:
            got = results.get(timeout=3600)
            slots, ended, exits = slots + got[0], ended + got[1], exits + got[2]
            claimer_cpu += got[3]
        seconds = time.time() - start_at
        proxy_after, pg_cpu = cpu_by_process(PROXIES[grpc_url]), postgres_cpu_seconds() - pg_cpu
        by_worker = sorted((proxy_after[pid] - proxy_cpu.get(pid, 0.0) for pid in proxy_after), reverse=True)
        proxy_cpu = sum(by_worker)
        for proc in procs:
            proc.join()
    counts = Counter(slots)
    return {
        "claimers": per * p["procs"], "processes": p["procs"], "budget": p["claims"], "claimed": len(slots),
        "duplicates": sum(n - 1 for n in counts.values()), "missing": p["claims"] - len(counts),
        "seconds, release to the last claimer's exit": seconds,
        "seconds, release to the last trial completed": max(ended) - start_at,
        "seconds, the end (last trial completed to the last exit)": max(exits) - max(ended),
        "claims/s": len(slots) / seconds,
        "proxy CPU seconds": proxy_cpu, "proxy CPU ms per claim": 1000 * proxy_cpu / len(slots),
        "proxy CPU seconds by process": " / ".join(f"{s:.1f}" for s in by_worker if s >= 0.05),
        "PostgreSQL CPU seconds": pg_cpu, "claimer processes' CPU seconds": claimer_cpu,
    }  # fmt: skip


# ---- the report ------------------------------------------------------------------------------------


def table(rows: dict) -> str:
    lines = ["| | |", "|---|---|"]
    for key, value in rows.items():
        lines.append(f"| {key} | {value:.2f} |" if isinstance(value, float) else f"| {key} | {value} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--only", choices=("proxy", "direct", "idle", "claims"), action="append")
    parser.add_argument(
        "--baseline", metavar="SRC", help="direct mode: also measure the agent of this checkout"
    )
    args = parser.parse_args()
    p = FULL if args.full else QUICK
    if not pg_reachable():
        sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432")
    only = set(args.only or ("proxy", "direct", "idle", "claims"))
    sections = [f"# Beyond one machine ({'full' if args.full else 'quick'})", "",
                "Written by `python bench/scale.py`. Machine:", "", table(machine()), ""]  # fmt: skip
    if "direct" in only:
        rows = {}
        for jobs in p["direct_jobs"]:
            seen = direct_connections(jobs)
            rows[f"-j {jobs}: peak agent connections (goal <= {2 + math.ceil(jobs / 2)})"] = seen
            print(f"direct -j {jobs}: {seen}", flush=True)
            if args.baseline:
                before = direct_connections(jobs, args.baseline)
                rows[f"-j {jobs}: before (the agent of {args.baseline})"] = before
                print(f"direct -j {jobs} before: {before}", flush=True)
        sections += ["## Direct database mode: one agent's PostgreSQL connections", "",
                     "Counted in pg_stat_activity by application_name while the agent's trials run.", "",
                     table(rows), ""]  # fmt: skip
    if "claims" in only:
        rows = claims_at_scale(p)
        print(rows, flush=True)
        sections += ["## Claims at scale, through the proxy on PostgreSQL", "",
                     "Threads across processes, each its own SweepStudy, claiming and completing.", "",
                     table(rows), ""]  # fmt: skip
    if "idle" in only:
        rows = idle_cost(p)
        print(rows, flush=True)
        sections += ["## Idle agents", "",
                     "Transactions on the Optuna database while agents wait on another's trials.", "",
                     table(rows), ""]  # fmt: skip
    if "proxy" in only:
        rows = proxy_sweep(p)
        print(rows, flush=True)
        sections += ["## Agents through the gRPC proxy and an `mlflow server` on PostgreSQL", "",
                     "Peak: every connection to the two databases (proxy, server, trials' none).", "",
                     table(rows), ""]  # fmt: skip
    sections.append(f"Load average at the end: {loadavg()}")
    RESULTS.write_text(merged("\n".join(sections) + "\n", RESULTS.read_text() if RESULTS.exists() else ""))
    print(f"written: {RESULTS}")


def merged(new: str, old: str) -> str:
    """`new`, followed by the sections of `old` that this run did not measure (with `--only`, the
    other figures stay), each under a note of the run they come from."""
    def sections(text: str) -> dict[str, str]:
        parts = text.split("\n## ")[1:]
        return {part.split("\n", 1)[0]: part for part in parts}

    kept = {title: body for title, body in sections(old).items() if title not in sections(new)}
    if not kept:
        return new
    header = old.split("\n## ", 1)[0].strip().splitlines()[0].lstrip("# ")
    out = new.rstrip("\n") + f"\n\n# Kept from the earlier run ({header})\n"
    for body in kept.values():
        body = body.split("\nLoad average at the end:")[0].split("\n# Kept from")[0].rstrip("\n")
        out += f"\n## {body}\n"
    return out


if __name__ == "__main__":
    main()
