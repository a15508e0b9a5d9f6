"""Helpers shared by the benchmarks: work dirs, configs, agents, storages, statistics, the machine."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"
PROJECT = BENCH / "project"
OBJECTIVE = BENCH / "trials" / "objective.py"  # a test function as a command trial, logged over REST
PY = sys.executable
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
KEEP = os.environ.get("BENCH_KEEP") == "1"  # keep work dirs and databases for a post-mortem


# ---- environment and work dirs -------------------------------------------------------------------


def clean_env(extra: dict | None = None) -> dict:
    """A user's shell: this Python's bin first on PATH (for `python`, `mlflow`), no inherited run."""
    env = dict(os.environ)
    for name in (
        "MLFLOW_RUN_ID",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_SWEEPER_DEBUG",
    ):
        env.pop(name, None)
    env["PATH"] = str(Path(PY).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


@contextlib.contextmanager
def workdir(name: str):
    """A fresh directory under bench/work/, removed afterwards (unless BENCH_KEEP=1)."""
    path = WORK / f"{name}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        if not KEEP:
            shutil.rmtree(path, ignore_errors=True)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def write_config(directory: Path, name: str = "sweep.yaml", **keys) -> Path:
    config = {"experiment": "bench", "sweep_name": "s", "output_dir": "./out"}
    config.update({k: v for k, v in keys.items() if v is not None})
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False, width=1000))
    return path


# ---- agents ----------------------------------------------------------------------------------------


STARTED = b" started (point "  # the agent's console line for each trial it starts


@dataclass
class AgentRun:
    """One `mlflow-sweeper sweep` process, its start time and what it printed."""

    process: subprocess.Popen
    started: float
    log_path: Path
    trials_started: int = 0
    samples: list[tuple[float, int, int, float]] = field(default_factory=list)  # time, trials, rss, cpu s
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(
                f"agent {self.pid} did not finish within {timeout:.0f} s; log: {self.log_path}"
            ) from None
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    @property
    def cpu_seconds(self) -> float:
        """User + system CPU time of the agent process (at its last sample)."""
        return self.samples[-1][3] if self.samples else float("nan")

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_agent(
    config: Path,
    *,
    jobs: int = 1,
    count: int | None = None,
    sample_every: float | None = 0.1,
    log_name: str = "agent.log",
    env: dict | None = None,
    prefix: list[str] | None = None,
) -> AgentRun:
    """Start an agent (the real CLI in its own process) in the config's directory.

    Its output goes to a log file, read as it grows to count started trials; with `sample_every`,
    the agent's resident memory and CPU time are sampled every that many seconds, with the count.
    """
    argv = [*(prefix or []), PY, "-m", "mlflow_sweeper", "sweep", str(config), "-j", str(jobs)]
    if count is not None:
        argv += ["--count", str(count)]
    log_path = config.parent / log_name
    out = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
    started = time.time()
    process = subprocess.Popen(
        argv,
        cwd=config.parent,
        env=clean_env(env),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    out.close()
    run = AgentRun(process, started, log_path)

    def follow() -> None:
        with open(log_path, "rb") as fh:
            buffer = b""
            while True:
                chunk = fh.read(65536)
                if chunk:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    run.trials_started += sum(1 for line in lines if STARTED in line)
                    continue
                if process.poll() is not None:
                    rest = fh.read()
                    run.trials_started += (buffer + rest).count(STARTED)
                    return
                time.sleep(0.02)

    run._threads.append(threading.Thread(target=follow, daemon=True))
    if sample_every:
        import psutil

        def sample() -> None:
            try:
                proc = psutil.Process(process.pid)
                while process.poll() is None:
                    with proc.oneshot():
                        cpu = proc.cpu_times()
                        run.samples.append(
                            (time.time(), run.trials_started, proc.memory_info().rss, cpu.user + cpu.system)
                        )
                    time.sleep(sample_every)
            except psutil.Error:
                return

        run._threads.append(threading.Thread(target=sample, daemon=True))
    for thread in run._threads:
        thread.start()
    return run


def check_exit(run: AgentRun, code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"{what}: agent exited {code}; last lines of {run.log_path}:\n{run.tail()}")


def run_json(argv: list[str], *, cwd: Path, timeout: float, env: dict | None = None) -> dict:
    """Run a workload script that prints one JSON object on its last line."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def anchor(name: str, *args, cwd: Path, timeout: float = 3600, env: dict | None = None) -> dict:
    return run_json([PY, str(BENCH / "anchors.py"), name, *map(str, args)], cwd=cwd, timeout=timeout, env=env)


# ---- reading the storages ------------------------------------------------------------------------


def optuna_trials(url: str, study: str = "bench/s") -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    try:
        study_id = storage.get_study_id_from_name(study)
        return sorted(storage.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number)
    finally:
        storage.remove_session()
        storage.engine.dispose()


def start_times(trials) -> list[float]:
    """Trial start times (epoch seconds), in start order (datetime_start is local time)."""
    return sorted(t.datetime_start.timestamp() for t in trials if t.datetime_start is not None)


def complete_times(trials) -> list[float]:
    return sorted(t.datetime_complete.timestamp() for t in trials if t.datetime_complete is not None)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def head_tail(per_trial: list[float], n: int = 100) -> tuple[float, float, float]:
    """Median of the first n and of the last n values, and last/first."""
    n = min(n, max(1, len(per_trial) // 2))
    first, last = median(per_trial[:n]), median(per_trial[-n:])
    return first, last, last / first if first else float("nan")


# ---- PostgreSQL ----------------------------------------------------------------------------------


def pg_reachable() -> bool:
    import socket

    try:
        with socket.create_connection((PG["host"], PG["port"]), timeout=1):
            return True
    except OSError:
        return False


def _pg_driver() -> str:
    """What a user's `postgresql://` gets with SQLAlchemy 2.1 (psycopg 3), else psycopg2."""
    try:
        import psycopg  # noqa: F401

        return "postgresql"
    except ImportError:
        return "postgresql+psycopg2"


def pg_admin(sql: str):
    if _pg_driver() == "postgresql":
        import psycopg

        conn = psycopg.connect(dbname="postgres", autocommit=True, **PG)
    else:
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", **PG)
        conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@contextlib.contextmanager
def pg_databases(*prefixes: str):
    """Fresh PostgreSQL databases (SQLAlchemy URLs), dropped afterwards."""
    names = [f"bench_{p}_{uuid.uuid4().hex[:8]}" for p in prefixes]
    try:
        for name in names:
            pg_admin(f'CREATE DATABASE "{name}"')
        yield [f"{_pg_driver()}://{PG['user']}@{PG['host']}:{PG['port']}/{n}" for n in names]
    finally:
        if not KEEP:
            for name in names:
                with contextlib.suppress(Exception):
                    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the machine ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    import psutil

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for module in ("mlflow", "optuna", "sqlalchemy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001
            versions[module] = "?"
    postgres = "not reachable"
    if pg_reachable():
        with contextlib.suppress(Exception):
            postgres = pg_admin("SHOW server_version")[0][0]
    sweeper = "?"
    with contextlib.suppress(Exception):
        sweeper = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        if subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "--", "mlflow_sweeper"]).returncode:
            sweeper += " + uncommitted changes in mlflow_sweeper/"
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": model,
        "cores": f"{os.cpu_count()} logical ({psutil.cpu_count(logical=False)} physical)",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "mlflow": versions["mlflow"],
        "optuna": versions["optuna"],
        "sqlalchemy": versions["sqlalchemy"],
        "postgresql": postgres,
        "mlflow-sweeper": sweeper,
    }


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


def cpu_rate(samples: list[tuple[float, int, int, float]], lo: int, hi: int) -> tuple[float, float]:
    """Between the samples where `lo` and `hi` trials had started: (CPU s per trial, cores busy)."""
    first = next((s for s in samples if s[1] >= lo), None)
    last = next((s for s in samples if s[1] >= hi), samples[-1] if samples else None)
    if first is None or last is None or last[1] <= first[1] or last[0] <= first[0]:
        return float("nan"), float("nan")
    cpu = last[3] - first[3]
    return cpu / (last[1] - first[1]), cpu / (last[0] - first[0])
