"""Where an agent's time goes per trial, on benchmark 1's workload (`true` x N grid, -j 1).

    python bench/profiling.py [--trials 300] [--backend sqlite|postgres] [--output FILE]

Two views of two runs of the same sweep, written to bench/PROFILE.md (SQLite, the default) or
bench/PROFILE-postgres.md (both storages on fresh PostgreSQL databases):

1. Sampling (py-spy record --idle, 100 Hz, the agent's worker thread only): the share of the
   worker's wall time under each mlflow_sweeper function (inclusive), the step of a trial each
   sample belongs to with what it was doing at the bottom (SQLite COMMIT, statement execution,
   SQLAlchemy/Optuna/MLflow Python, waiting for the trial...), and the top leaf functions.
   Shares are turned into ms per trial with the run's measured cycle (mean gap between trial starts).
2. Counting (the CLI run in-process with timing wrappers on the package's methods, Optuna's
   RDBStorage and MlflowClient, and a SQLAlchemy hook counting statements): calls, ms and SQL
   statements per trial of each storage call and step, on the worker threads. Wrappers cost a
   few microseconds per call.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from common import (
    BENCH,
    PY,
    gaps,
    median,
    optuna_trials,
    pg_databases,
    sqlite_url,
    start_agent,
    start_times,
    workdir,
    write_config,
)

BACKEND = "sqlite"  # or "postgres": fresh databases for Optuna and MLflow, dropped afterwards


@contextlib.contextmanager
def sweep_config(name: str, trials: int):
    """A work dir with benchmark 1's config on the chosen backend: (dir, config, Optuna URL)."""
    with workdir(name) as work, contextlib.ExitStack() as stack:
        if BACKEND == "postgres":
            optuna_url, mlflow_url = stack.enter_context(pg_databases("popt", "pmlf"))
        else:
            optuna_url, mlflow_url = sqlite_url(work / "optuna.db"), sqlite_url(work / "mlflow.db")
        config = write_config(
            work,
            command="true",
            parameters={"x": {"low": 0, "high": trials - 1, "type": "int"}},
            optuna_storage=optuna_url,
            mlflow_storage=mlflow_url,
        )
        yield work, config, optuna_url


def cycle(optuna_url: str) -> tuple[float, float, int]:
    """(mean gap, median gap, trials) between trial starts."""
    starts = start_times(optuna_trials(optuna_url))
    return (starts[-1] - starts[0]) / (len(starts) - 1), median(gaps(starts)), len(starts)


# ---- 1. sampling with py-spy ----------------------------------------------------------------------------


def _category(frame: str) -> str:
    if "do_commit" in frame:
        return "SQLite COMMIT (sqlite3 C, fsync)"
    if "do_execute" in frame or "do_executemany" in frame:
        return "SQL statement execution (sqlite3 C)"
    waiting = "subprocess.py" in frame and "wait" in frame.split(" (")[0].lower()
    if "TrialExecution.await_end" in frame or waiting:
        return "waiting for the trial to exit (poll/wait)"
    if "subprocess.py" in frame:
        return "fork/exec of the trial (subprocess)"
    if "Connection.wait (psycopg/" in frame:
        return "waiting for PostgreSQL (psycopg Connection.wait: a round trip)"
    if "(psycopg/" in frame or "(psycopg2/" in frame:
        return "psycopg driver (Python)"
    if "sqlalchemy" in frame:
        return "sqlalchemy (Python)"
    for package in ("optuna", "mlflow_sweeper", "mlflow", "alembic", "psutil"):
        if f"({package}/" in frame:
            return f"{package} (Python)"
    return "Python stdlib and other"


PROBES = (  # (label, a frame's text to look for): library functions worth seeing inclusive
    ("Optuna RDBStorage._create_new_trial", "RDBStorage._create_new_trial ("),
    ("Optuna RDBStorage.set_trial_state_values", "RDBStorage.set_trial_state_values ("),
    ("Optuna RDBStorage.get_all_trials", "RDBStorage.get_all_trials ("),
    ("Optuna RDBStorage.set_trial_user_attr", "RDBStorage.set_trial_user_attr ("),
    ("MLflow SqlAlchemyStore.create_run", "SqlAlchemyStore.create_run ("),
    ("MLflow SqlAlchemyStore.log_batch", "SqlAlchemyStore.log_batch ("),
    ("MLflow SqlAlchemyStore.update_run_info (end a run)", "SqlAlchemyStore.update_run_info ("),
    ("SQLAlchemy pool pre-ping (a round trip per checkout)", "do_ping ("),
    ("SQLAlchemy connection checkout from the pool", "_ConnectionFairy._checkout ("),
    ("COMMIT", "do_commit ("),
    ("sqlite BEGIN IMMEDIATE hook (the package's on_begin)", "on_begin ("),
)


def _step(frames: list[str]) -> str:
    """The innermost mlflow_sweeper function that is a step (not retry or a lambda)."""
    for frame in reversed(frames):
        if "(mlflow_sweeper/" in frame and "retry" not in frame and "<lambda>" not in frame:
            return frame.split(" (")[0]
    return "(outside mlflow_sweeper)"


def sample(trials: int) -> list[str]:
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        return ["py-spy is not installed: `pip install py-spy` into this environment to get this section."]
    with sweep_config("profile-spy", trials) as (work, config, optuna_url):
        raw = work / "profile.txt"
        agent = start_agent(
            config,
            sample_every=None,
            prefix=[
                spy,
                "record",
                "--threads",
                "--idle",
                "--function",
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--",
            ],
        )
        if agent.wait(3600) != 0:
            return [f"the profiled agent failed:\n```\n{agent.tail()}\n```"]
        mean_cycle, _, n = cycle(optuna_url)
        stacks = []
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if any("WorkerPool._work (" in f for f in frames):  # thread names can be stale
                stacks.append((frames[1:], int(count)))
    total = sum(c for _, c in stacks)
    if not total:
        return ["py-spy recorded no samples of the worker thread."]
    per = mean_cycle * 1000 / total  # ms per trial of one sample's share

    inclusive, steps, leaves = Counter(), defaultdict(Counter), Counter()
    for frames, count in stacks:
        mine = (f for f in frames if "(mlflow_sweeper/" in f and "<lambda>" not in f and "retry (" not in f)
        for frame in dict.fromkeys(mine):
            inclusive[frame] += count
        steps[_step(frames)][_category(frames[-1])] += count
        leaves[frames[-1]] += count
    lines = [
        f"### Sampling: py-spy, {n} trials, mean cycle {mean_cycle * 1000:.1f} ms per trial, "
        f"{total} worker samples",
        "",
        "Inclusive share of the worker thread's wall time (top 25 mlflow_sweeper functions):",
        "",
        "| function | share | ms / trial |",
        "|---|---:|---:|",
    ]
    for frame, count in inclusive.most_common(25):
        lines.append(f"| `{frame}` | {count / total:.0%} | {count * per:.1f} |")
    lines += [
        "",
        "Each sample charged to its innermost step (the innermost mlflow_sweeper function other than "
        "`retry` and lambdas) and to what the thread was doing at the bottom of the stack:",
        "",
        "| step | ms / trial | at the bottom |",
        "|---|---:|---|",
    ]
    for step, cats in sorted(steps.items(), key=lambda kv: -sum(kv[1].values())):
        count = sum(cats.values())
        if count / total < 0.005:
            continue
        bottom = ", ".join(f"{cat} {c * per:.1f}" for cat, c in cats.most_common(4))
        lines.append(f"| `{step}` | {count * per:.1f} | {bottom} |")
    by_cat = Counter()
    for cats in steps.values():
        by_cat.update(cats)
    lines += [
        "",
        "By what the thread was doing (all steps):",
        "",
        "| at the bottom | share | ms / trial |",
        "|---|---:|---:|",
    ]
    for cat, count in by_cat.most_common(12):
        lines.append(f"| {cat} | {count / total:.0%} | {count * per:.1f} |")
    probes = Counter()
    for frames, count in stacks:
        for label, needle in PROBES:
            if any(needle in f for f in frames):
                probes[label] += count
    lines += ["", "Inside the libraries (inclusive):", "", "| under | share | ms / trial |"]
    lines += ["|---|---:|---:|"]
    for label, _ in PROBES:
        if probes[label]:
            lines.append(f"| {label} | {probes[label] / total:.0%} | {probes[label] * per:.1f} |")
    lines += [
        "",
        "Top leaf functions (self time):",
        "",
        "| leaf frame | share | ms / trial |",
        "|---|---:|---:|",
    ]
    for frame, count in leaves.most_common(15):
        lines.append(f"| `{frame}` | {count / total:.0%} | {count * per:.1f} |")
    return lines


# ---- 2. counting in-process ------------------------------------------------------------------------------

_local = threading.local()
# (thread, layer, name) -> [calls, seconds, SQL statements sent to the database during the calls]
STATS: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0])


def _count_statements() -> None:
    """Count the SQL statements each thread sends (every engine, Optuna's and MLflow's)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _one(*_args, **_kwargs) -> None:
        _local.statements = getattr(_local, "statements", 0) + 1


def _thread_kind() -> str:
    name = threading.current_thread().name
    return "worker" if name.startswith("worker") else name


def _wrap(layer: str, name: str, fn, outermost: bool):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        depth = getattr(_local, layer, 0)
        if outermost and depth:
            return fn(*args, **kwargs)
        setattr(_local, layer, depth + 1)
        sent = getattr(_local, "statements", 0)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - t0
            setattr(_local, layer, depth)
            entry = STATS[(_thread_kind(), layer, name)]
            entry[0] += 1
            entry[1] += elapsed
            entry[2] += getattr(_local, "statements", 0) - sent

    return wrapper


def _instrument_class(
    cls, layer: str, *, public_only: bool, outermost: bool, inherited: bool = False
) -> None:
    """Wrap the class's functions (with `inherited`, also those it inherits, e.g. from BaseStorage)."""
    names = [a for a in dir(cls) if a not in ("__init__",)] if inherited else list(vars(cls))
    for attr in names:
        value = inspect.getattr_static(cls, attr)
        if not inspect.isfunction(value) or (public_only and attr.startswith("_")) or attr == "__init__":
            continue
        setattr(cls, attr, _wrap(layer, f"{cls.__name__}.{attr}", value, outermost))


def instrument() -> None:
    import optuna
    from mlflow.tracking import MlflowClient

    _instrument_class(
        optuna.storages.RDBStorage, "optuna storage", public_only=True, outermost=True, inherited=True
    )
    # The private entry points the package may call directly (create a trial, get its number).
    for private in ("_create_new_trial",):
        if hasattr(optuna.storages.RDBStorage, private):
            method = inspect.getattr_static(optuna.storages.RDBStorage, private)
            wrapped = _wrap("optuna storage", f"RDBStorage.{private}", method, True)
            setattr(optuna.storages.RDBStorage, private, wrapped)
    _instrument_class(MlflowClient, "mlflow client", public_only=True, outermost=True)
    subprocess.Popen.__init__ = _wrap("spawn", "subprocess.Popen", subprocess.Popen.__init__, True)
    import importlib

    parts = ("facade", "claiming", "creation", "ending", "target", "view", "reclaiming")
    parts += ("ledger", "liveness", "closing")
    coordination = [f"coordination.{part}" for part in parts]
    searched = ("search.algorithms", "search.space")
    for module_name in ("agent", *coordination, "record", "launch", "progress", *searched):
        try:
            module = importlib.import_module(f"mlflow_sweeper.{module_name}")
        except ImportError:
            continue
        for name, value in list(vars(module).items()):
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(value):
                _instrument_class(value, "sweeper", public_only=False, outermost=False)
            elif inspect.isfunction(value):  # module functions, looked up at call time
                setattr(module, name, _wrap("sweeper", name, value, False))


def count_in_process(config: str) -> None:
    """Child mode: run the CLI in this process with wrappers, print the stats as lines."""
    instrument()
    _count_statements()
    from mlflow_sweeper.cli import main

    try:
        main(["sweep", config], standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    for (thread, layer, name), (calls, seconds, statements) in STATS.items():
        print(f"STAT\t{thread}\t{layer}\t{name}\t{calls}\t{seconds}\t{statements}")


def child(trials: int, *flags: str) -> tuple[float, float, int, str]:
    """Run the sweep in a child process; (mean cycle, median gap, trials, stdout)."""
    with sweep_config("profile-count", trials) as (work, config, optuna_url):
        done = subprocess.run(
            [PY, str(Path(__file__).resolve()), "--child", str(config), *flags],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(BENCH)},
            timeout=3600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the in-process run {flags} failed:\n{done.stderr[-2000:]}")
        mean_cycle, median_gap, n = cycle(optuna_url)
    return mean_cycle, median_gap, n, done.stdout


def count(trials: int) -> list[str]:
    try:
        mean_cycle, _, n, stdout = child(trials)
    except RuntimeError as exc:
        return [str(exc)]
    rows = []
    for line in stdout.splitlines():
        if line.startswith("STAT\t"):
            _, thread, layer, name, calls, seconds, statements = line.split("\t")
            if thread == "worker":
                rows.append((layer, name, int(calls), float(seconds), int(statements)))
    lines = [
        f"### Counting: in-process wrappers, {n} trials, mean cycle {mean_cycle * 1000:.1f} ms per trial "
        "(worker thread)",
        "",
    ]
    for layer in ("optuna storage", "mlflow client", "spawn", "sweeper"):
        chosen = sorted((r for r in rows if r[0] == layer), key=lambda r: -r[3])
        if not chosen:
            continue
        calls = sum(r[2] for r in chosen) / n
        spent = sum(r[3] for r in chosen) / n * 1000
        sql = sum(r[4] for r in chosen) / n
        head = f"**{layer}**" + (
            f": {calls:.1f} calls, {sql:.1f} SQL statements, {spent:.1f} ms per trial"
            if layer in ("optuna storage", "mlflow client")
            else ""
        )
        lines += [
            head,
            "",
            "| call | calls / trial | ms / trial | ms / call | SQL statements / call |",
            "|---|---:|---:|---:|---:|",
        ]
        for _, name, calls_, seconds, statements in chosen[: 30 if layer == "sweeper" else 20]:
            if seconds / n < 0.00005:
                continue
            lines.append(
                f"| `{name}` | {calls_ / n:.2f} | {seconds / n * 1000:.2f} | {seconds / calls_ * 1000:.2f} "
                f"| {statements / calls_:.1f} |"
            )
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--output", default=None, help="default bench/PROFILE.md (PROFILE-postgres.md)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres"), default="sqlite", help="both storages on"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        count_in_process(args.child)
        return 0
    from common import loadavg, machine

    global BACKEND
    BACKEND = args.backend
    output = args.output or str(BENCH / ("PROFILE.md" if BACKEND == "sqlite" else f"PROFILE-{BACKEND}.md"))
    where = "SQLite" if BACKEND == "sqlite" else "PostgreSQL (127.0.0.1, fresh databases)"

    info = machine()
    lines = [
        "# Profile: where an agent's time goes per trial",
        "",
        f"`python bench/profiling.py --trials {args.trials} --backend {BACKEND}`: benchmark 1's workload "
        '(`command: "true"`, no '
        f"`spec`, a {args.trials}-point grid, {where} for both storages, `-j 1`). {info['date']}, "
        f"{info['cpu']}, {info['cores']}, Python {info['python']}, mlflow {info['mlflow']}, "
        f"optuna {info['optuna']}, sqlalchemy {info['sqlalchemy']}; load average before: {loadavg()}.",
        "",
    ]
    print("profile: sampling with py-spy", flush=True)
    lines += sample(args.trials) + [""]
    print("profile: counting calls in-process", flush=True)
    lines += count(args.trials)
    lines += [f"Load average after: {loadavg()}.", ""]
    Path(output).write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
