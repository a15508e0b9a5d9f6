"""Anchor workloads: what the sweeper's figures are compared with, each in a fresh process.

    python bench/anchors.py NAME ARGS...   -> prints one JSON object on its last line

grid      TRIALS POINTS URL  Optuna GridSampler (study.optimize) on an Optuna storage, POINTS-point grid
random    TRIALS URL         Optuna RandomSampler ask/tell (the floor of Optuna's own cost)
mlflow    RUNS URI           MLflow bookkeeping of one trial run: create (tags), log params, end
spawn     N                  Popen(["true"]) in a new session, then wait (the floor of a launch)
bare      N PROJECT URI [new|resume]  the trivial trial `python train.py --x i`, bare in a loop:
                             the script creates its run (new), or resumes one made just before
projects  N PROJECT URI      mlflow.projects.run(synchronous=False) + wait() per trial, as MLflow's
                             hyperparameter example does
pool      JOBS N SECONDS     N bare `sleep SECONDS` processes, JOBS at a time (a thread pool)
initdb    URI                create an MLflow store's tables (done before a clock starts)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

STARTED = time.time()


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def out(**result) -> None:
    result.setdefault("process_started", STARTED)
    print(json.dumps(result))


def quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def grid(trials: int, points: int, url: str) -> None:
    optuna = quiet_optuna()
    # Several axes when the grid is big, as a real big grid would be (and GridSampler accepts).
    if points >= 1000 and points % 1000 == 0:
        space = {"a": list(range(points // 1000)), "b": list(range(100)), "c": list(range(10))}
    else:
        space = {"x": list(range(points))}
    sampler = optuna.samplers.GridSampler(space, seed=0)
    study = optuna.create_study(study_name="anchor", storage=url, sampler=sampler)
    starts, rss_at = [], {}

    # optimize(), not ask/tell: GridSampler stops the study when the grid is exhausted, which only
    # optimize() allows. A trial's start is when the objective is called (its parameters known).
    def objective(trial):
        starts.append(time.time())
        values = [trial.suggest_int(name, v[0], v[-1]) for name, v in space.items()]
        if len(starts) in (100, trials):
            rss_at[len(starts)] = rss()
        return float(sum(values))

    study.optimize(objective, n_trials=trials)
    out(starts=starts, rss=rss_at)


def random_(trials: int, url: str) -> None:
    optuna = quiet_optuna()
    study = optuna.create_study(study_name="anchor", storage=url, sampler=optuna.samplers.RandomSampler(0))
    durations = []
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask()
        trial.suggest_int("x", 0, 10**6)
        study.tell(trial, 0.0)
        durations.append(time.perf_counter() - t0)
    out(durations=durations)


def mlflow_(runs: int, uri: str) -> None:
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.create_experiment("anchor")
    parent = client.create_run(experiment).info.run_id
    durations = []
    for number in range(runs):
        t0 = time.perf_counter()
        tags = {"mlflow.parentRunId": parent, "sweeper.trial": str(number), "mlflow.runName": f"t-{number}"}
        run_id = client.create_run(experiment, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param("x", str(number))])
        client.set_terminated(run_id, "FINISHED")
        durations.append(time.perf_counter() - t0)
    out(durations=durations)


def spawn(n: int) -> None:
    durations = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.Popen(["true"], start_new_session=True, stdin=subprocess.DEVNULL).wait()
        durations.append(time.perf_counter() - t0)
    out(durations=durations)


def _init_store(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).search_experiments(max_results=1)  # creates the tables before the clock runs


def bare(n: int, project: str, uri: str, mode: str = "new") -> None:
    """`new`: the script creates its own run, as a user's `python train.py` does. `resume`: this
    loop creates each run first and passes MLFLOW_RUN_ID, as MLflow Projects (and the sweeper)
    do, on a store in WAL mode as the sweeper leaves it; the script then skips resolving a new
    run's context (git, source, user), so this is the leanest loop around the same script."""
    _init_store(uri)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = uri
    client = None
    if mode == "resume":
        import sqlite3

        from mlflow.tracking import MlflowClient

        if uri.startswith("sqlite:///"):
            with sqlite3.connect(uri[len("sqlite:///") :]) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        client = MlflowClient(uri)
        found = client.get_experiment_by_name("anchor")
        experiment = found.experiment_id if found else client.create_experiment("anchor")
        env["MLFLOW_EXPERIMENT_ID"] = experiment
    starts, durations = [], []
    for x in range(n):
        starts.append(time.time())
        t0 = time.perf_counter()
        if client is not None:
            env["MLFLOW_RUN_ID"] = client.create_run(experiment).info.run_id
        code = subprocess.Popen(
            [sys.executable, "train.py", "--x", str(x)], cwd=project, env=env, stdin=subprocess.DEVNULL
        ).wait()
        durations.append(time.perf_counter() - t0)
        if code != 0:
            raise SystemExit(f"bare trial {x} exited {code}")
    out(starts=starts, durations=durations)


def projects(n: int, project: str, uri: str) -> None:
    import mlflow
    import mlflow.projects
    from mlflow.tracking import MlflowClient

    _init_store(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("anchor")
    starts, durations, values = [], [], []
    with mlflow.start_run(experiment_id=experiment):
        for x in range(n):
            starts.append(time.time())
            t0 = time.perf_counter()
            with mlflow.start_run(nested=True, experiment_id=experiment) as child:
                submitted = mlflow.projects.run(
                    uri=project,
                    entry_point="train",
                    run_id=child.info.run_id,
                    parameters={"x": x},
                    experiment_id=experiment,
                    env_manager="local",
                    synchronous=False,
                )
                if not submitted.wait():
                    raise SystemExit(f"projects.run trial {x} failed")
            values.append(client.get_run(submitted.run_id).data.metrics.get("m"))
            durations.append(time.perf_counter() - t0)
    out(starts=starts, durations=durations, values=values)


def pool(jobs: int, n: int, seconds: float) -> None:
    def one(_):
        start = time.time()
        subprocess.Popen(
            ["sh", "-c", f"sleep {seconds}"], start_new_session=True, stdin=subprocess.DEVNULL
        ).wait()
        return start, time.time()

    with ThreadPoolExecutor(jobs) as executor:
        spans = list(executor.map(one, range(n)))
    out(spans=spans)


def main(argv: list[str]) -> None:
    name, args = argv[0], argv[1:]
    if name == "grid":
        grid(int(args[0]), int(args[1]), args[2])
    elif name == "random":
        random_(int(args[0]), args[1])
    elif name == "mlflow":
        mlflow_(int(args[0]), args[1])
    elif name == "spawn":
        spawn(int(args[0]))
    elif name == "bare":
        bare(int(args[0]), args[1], args[2], *args[3:4])
    elif name == "projects":
        projects(int(args[0]), args[1], args[2])
    elif name == "initdb":
        _init_store(args[0])
        out()
    elif name == "pool":
        pool(int(args[0]), int(args[1]), float(args[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
