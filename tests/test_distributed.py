"""Many agents on one sweep: every grid point exactly once, one parent run, a shared budget.

Agents are real `python -m mlflow_sweeper sweep` processes, each with its own working directory
and `output_dir` (configs identical but for `output_dir`; the storages are shared through
absolute URLs), and trials are real subprocesses (tests/project/train.py) that append one JSON
line per execution to a shared record file, so a duplicate execution cannot hide.

The agents are released by a barrier: each is started by a small wrapper that imports the heavy
modules (mlflow, optuna, the package), reports ready, waits until a "go" file appears, then runs
the CLI exactly as `python -m mlflow_sweeper` does. So all agents reach the creation of a fresh
storage, study, experiment and parent run within a few milliseconds of each other.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import (
    PROJECT,
    REPO,
    TRAIN,
    cli_env,
    kill_process_tree,
    mlflow_runs,
    read_records,
    run_cli,
    start_cli,
    write_config,
)

STUDY = "exp/s1"
CLAIMS = STUDY + "#claims"
CLOSE = STUDY + "#close"  # the close election's study
GRID = {"x": [1, 2, 3, 4], "y": [10, 20, 30]}  # 12 points
AGENT_TIMEOUT = 240.0

TRIAL_STARTED = re.compile(r"trial (\d+) started")
BAD_OUTPUT = re.compile(r"Traceback|database is locked|unexpected error|already exists", re.IGNORECASE)


# ---- agents ----------------------------------------------------------------------------------


@dataclass
class Agent:
    index: int
    workdir: Path
    config: Path
    output_dir: Path
    log: Path
    proc: subprocess.Popen | None = None
    returncode: int | None = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def started(self) -> list[int]:
        return [int(n) for n in TRIAL_STARTED.findall(self.output)]


@pytest.fixture
def processes():
    """Every process a test starts; whatever is still alive at the end is killed with its tree."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            kill_process_tree(proc)


def agent_configs(root: Path, n: int, **keys) -> list[Agent]:
    """n agent directories, each with its own config copy that differs only in `output_dir`."""
    agents = []
    for i in range(n):
        workdir = root / f"agent{i}"
        output_dir = workdir / "out"
        config = write_config(workdir, output_dir=str(output_dir), **keys)
        agents.append(Agent(i, workdir, config, output_dir, workdir / "agent.log"))
    texts = [yaml.safe_load(a.config.read_text()) for a in agents]
    for text in texts:
        text.pop("output_dir")
    assert all(t == texts[0] for t in texts), "agent configs must be identical but for output_dir"
    return agents


def release_agents(agents: list[Agent], processes: list, *cli_args: str, root: Path) -> float:
    """Start every agent, wait until all are ready, then let them go at once; returns the go time."""
    barrier = root / "barrier"
    barrier.mkdir(exist_ok=True)
    go = barrier / "go"
    for agent in agents:
        ready = barrier / f"ready{agent.index}"
        agent.proc = start_cli(
            "sweep", agent.config, *cli_args, cwd=agent.workdir, output=agent.log, barrier=(ready, go)
        )
        processes.append(agent.proc)
    deadline = time.monotonic() + 120
    while not all((barrier / f"ready{a.index}").exists() for a in agents):
        for agent in agents:
            if agent.proc.poll() is not None:
                pytest.fail(f"agent {agent.index} exited before the barrier:\n{agent.output[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail("agents not ready at the barrier after 120 s")
        time.sleep(0.02)
    go.touch()
    return time.monotonic()


def wait_agents(agents: list[Agent], timeout: float = AGENT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for agent in agents:
        try:
            agent.returncode = agent.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in agents:
                kill_process_tree(other.proc)
            pytest.fail(
                f"agent {agent.index} still running after {timeout:.0f} s; outputs:\n" + outputs(agents)
            )


def outputs(agents: list[Agent], tail: int = 4000) -> str:
    return "\n".join(f"--- agent {a.index} (exit {a.returncode}) ---\n{a.output[-tail:]}" for a in agents)


def run_agents(agents: list[Agent], processes: list, *cli_args: str, root: Path) -> float:
    """Release the agents at once and wait for them; returns the wall time of the sweep."""
    go = release_agents(agents, processes, *cli_args, root=root)
    wait_agents(agents)
    return time.monotonic() - go


# ---- reading the storages independently of the product -----------------------------------------


def open_optuna(url: str):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage

    if url.startswith("journal://"):
        return JournalStorage(JournalFileBackend(url[len("journal://") :]))
    if url.startswith(("redis://", "rediss://")):
        return JournalStorage(JournalRedisBackend(url))
    return optuna.storages.RDBStorage(url)


def close_optuna(storage) -> None:
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def grid_points(grid: dict) -> list[tuple[str, ...]]:
    return [tuple(str(v) for v in combo) for combo in itertools.product(*grid.values())]


def point(params: dict, names) -> tuple[str, ...]:
    return tuple(str(params[name]) for name in names)


def lock_files(*dirs: Path) -> list[Path]:
    found = []
    for directory in dirs:
        if directory.exists():
            found += [p for p in directory.rglob("*.lock")]
    return found


@dataclass
class Figures:
    agents: int
    workers: int
    trials: int
    executions: int
    duplicates: int
    per_agent: list[int]
    seconds: float

    def __str__(self) -> str:
        split = "/".join(map(str, self.per_agent))
        return (
            f"{self.agents} agents x -j {self.workers}: {self.trials} trials, {self.executions} executions, "
            f"{self.duplicates} duplicates, split {split}, {self.seconds:.1f} s"
        )


def check_agents(agents: list[Agent]) -> None:
    codes = [a.returncode for a in agents]
    assert codes == [0] * len(agents), f"agent exit codes {codes}\n" + outputs(agents)
    for agent in agents:
        bad = sorted({m.group(0) for m in BAD_OUTPUT.finditer(agent.output)})
        assert not bad, f"agent {agent.index} printed {bad}:\n{agent.output[-5000:]}"


def check_sweep(
    agents: list[Agent],
    *,
    optuna_url: str,
    mlflow_uri: str,
    record: Path,
    grid: dict | None,
    budget: int,
    shared_dirs: list[Path],
    jobs: int,
    seconds: float,
) -> Figures:
    """Everything the contract promises about a finished multi-agent sweep."""
    check_agents(agents)
    names = list(grid) if grid else ["x", "y"]

    # Trial executions, as the trials themselves recorded them (a re-run of a slot, random or
    # grid, runs the same parameters again; distinct random slots draw distinct floats).
    records = read_records(record)
    executed = Counter(point(r["params"], names) for r in records)
    duplicates = {p: n for p, n in executed.items() if n > 1}
    assert not duplicates, f"points executed more than once: {duplicates}\n" + outputs(agents)
    assert len({r["run_id"] for r in records}) == len(records), "a trial run was executed twice"
    if grid:
        assert sorted(executed) == sorted(grid_points(grid)), f"executed {sorted(executed)}"
    assert len(records) == budget, f"{len(records)} trial executions for a budget of {budget}"
    started = [n for a in agents for n in a.started]
    assert sorted(started) == list(range(budget)), f"trials started by the agents: {sorted(started)}"

    # Optuna: one study (plus its claims ledger), every point COMPLETE exactly once.
    storage = open_optuna(optuna_url)
    try:
        studies = sorted(s.study_name for s in storage.get_all_studies())
        assert studies == sorted([STUDY, CLAIMS, CLOSE]), f"studies in the Optuna storage: {studies}"
        study_id = storage.get_study_id_from_name(STUDY)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        states = Counter(t.state.name for t in trials)
        assert states == {"COMPLETE": budget}, f"Optuna trial states {dict(states)}"
        if grid:
            complete = Counter(point(t.params, names) for t in trials)
            assert complete == Counter(grid_points(grid)), f"COMPLETE points {complete}"
        else:
            keys = Counter(tuple(sorted(t.params.items())) for t in trials)
            assert all(n == 1 for n in keys.values()), f"the same random point twice: {keys}"
        optuna_runs = {t.user_attrs.get("mlflow_run_id") for t in trials}
        # Every slot's claim settled once its trial was launched (or voided by the others, its
        # agent dead before creating the trial, which they then queued); any past the budget is
        # parked.
        claims = storage.get_all_trials(storage.get_study_id_from_name(CLAIMS), deepcopy=False)
        settled = Counter(c.state.name for c in claims if c.number < budget)
        assert set(settled) <= {"COMPLETE", "FAIL"}, f"claims of the budget's slots: {dict(settled)}"
        assert all(c.state.name == "WAITING" for c in claims if c.number >= budget)
        parent_attr = storage.get_study_user_attrs(study_id).get("mlflow_parent_run_id")
    finally:
        close_optuna(storage)

    # MLflow: exactly one parent, FINISHED; one FINISHED child run per trial, nested under it.
    runs = mlflow_runs(mlflow_uri)
    every_run = mlflow_runs(mlflow_uri, deleted=True)
    roles = Counter(r.data.tags.get("sweeper.role") for r in every_run)
    assert roles == {"parent": 1, "trial": budget}, f"runs by role (deleted included): {dict(roles)}"
    parents = [r for r in runs if r.data.tags.get("sweeper.role") == "parent"]
    assert len(parents) == 1, f"{len(parents)} parent runs"
    parent = parents[0]
    assert parent.info.status == "FINISHED", f"parent {parent.info.run_id} is {parent.info.status}"
    assert parent.info.run_id == parent_attr, "the study records another parent run"
    trial_runs = [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]
    assert len(trial_runs) == budget
    assert all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in trial_runs)
    assert all(r.data.tags.get("sweeper.sweep") == STUDY for r in trial_runs)
    statuses = Counter(r.info.status for r in trial_runs)
    assert statuses == {"FINISHED": budget}, f"trial run statuses {dict(statuses)}"
    run_ids = {r.info.run_id for r in trial_runs}
    assert optuna_runs == run_ids, "Optuna trials and MLflow trial runs differ"
    assert {r["run_id"] for r in records} == run_ids, "trials logged into runs other than their own"
    if grid:
        assert Counter(point(r.data.params, names) for r in trial_runs) == Counter(grid_points(grid))

    # No lock file left behind, in any output_dir or next to the shared files.
    left = lock_files(*[a.output_dir for a in agents], *shared_dirs)
    assert not left, f"lock files left behind: {left}"

    return Figures(
        agents=len(agents),
        workers=jobs,
        trials=len(trials),
        executions=len(records),
        duplicates=sum(n - 1 for n in executed.values()),
        per_agent=[len(a.started) for a in agents],
        seconds=seconds,
    )


def check_late_agent(root: Path, keys: dict, *, record: Path, mlflow_uri: str, optuna_url: str) -> float:
    """An agent started on a finished sweep exits 0 at once and starts nothing."""
    late = agent_configs(root / "late", 1, **keys)[0]
    before = (len(read_records(record)), len(mlflow_runs(mlflow_uri, deleted=True)))
    t0 = time.monotonic()
    result = run_cli("sweep", late.config, "-j", "2", cwd=late.workdir, timeout=120)
    elapsed = time.monotonic() - t0
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert "already complete" in text, text
    assert not TRIAL_STARTED.search(text), text
    assert not BAD_OUTPUT.search(text), text
    after = (len(read_records(record)), len(mlflow_runs(mlflow_uri, deleted=True)))
    assert after == before, f"the late agent changed (executions, runs) from {before} to {after}"
    storage = open_optuna(optuna_url)
    try:
        trials = storage.get_all_trials(storage.get_study_id_from_name(STUDY), deepcopy=False)
        assert len(trials) == before[0]
    finally:
        close_optuna(storage)
    parents = [r for r in mlflow_runs(mlflow_uri) if r.data.tags.get("sweeper.role") == "parent"]
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert not lock_files(late.output_dir)
    # "At once": no waiting for other agents or for stale trials; only the interpreter's start-up
    # and two storage connections, on a machine shared with other test runs.
    assert elapsed < 60, f"the late agent took {elapsed:.1f} s"
    return elapsed


def grid_keys(
    optuna_url: str, mlflow_uri: str, record: Path, behave: str = "sleep:0.2", grid: dict = GRID, **extra
) -> dict:
    parameters = {**grid, "behave": behave, "record": str(record)}
    if behave.startswith("light:"):
        extra.setdefault("spec", None)  # a light trial logs no metric: it completes when it succeeds
    return {
        "command": f"python {TRAIN}",
        "parameters": parameters,
        "optuna_storage": optuna_url,
        "mlflow_storage": mlflow_uri,
        **extra,
    }


# ---- storages ------------------------------------------------------------------------------------


def optuna_storage_url(kind: str, shared: Path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{shared / 'optuna.db'}"
    if kind == "journal":
        return f"journal://{shared / 'optuna.log'}"
    if kind == "postgres":
        return request.getfixturevalue("postgres_db")("optuna")
    if kind == "mysql":
        return request.getfixturevalue("mysql_db")("optuna")
    if kind == "redis":
        return request.getfixturevalue("redis_url")
    raise AssertionError(kind)


def mlflow_storage_url(kind: str, shared: Path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{shared / 'mlflow.db'}"
    if kind == "postgres":
        return request.getfixturevalue("postgres_db")("mlflow")
    if kind == "mysql":  # Alembic's migrations on a fresh MariaDB: agents must not run them at once
        return request.getfixturevalue("mysql_db")("mlflow")
    raise AssertionError(kind)


# (Optuna storage, MLflow storage, workers per agent, grid, trial behaviour). The SQLite case is
# also the load test: 3 agents x 4 workers = 12 workers on the 12 points of shared SQLite files,
# so every claim, run creation and trial start and end (no sleep) hits both files at once.
STORAGES = [
    pytest.param(
        "sqlite",
        "sqlite",
        4,
        GRID,
        "ok",
        id="optuna-sqlite/mlflow-sqlite/3x4-under-load",
        marks=pytest.mark.extended,
    ),
    pytest.param(
        "journal",
        "sqlite",
        2,
        GRID,
        "light:0.2",
        id="optuna-journal/mlflow-sqlite",
        marks=pytest.mark.extended,
    ),
    pytest.param(
        "postgres",
        "postgres",
        2,
        GRID,
        "light:0.2",
        id="optuna-postgres/mlflow-postgres",
        marks=pytest.mark.server,
    ),
    pytest.param(
        "mysql", "mysql", 2, GRID, "light:0.2", id="optuna-mariadb/mlflow-mariadb", marks=pytest.mark.server
    ),
    # The same on Redis (a sweep on Redis alone: test_pruning.py's every-storage test).
    pytest.param(
        "redis", "postgres", 2, GRID, "light:0.2", id="optuna-redis/mlflow-postgres",
        marks=[pytest.mark.server, pytest.mark.extended],
    ),
]  # fmt: skip


# ---- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("optuna_kind, mlflow_kind, jobs, grid, behave", STORAGES)
def test_agents_started_at_once_run_every_grid_point_once(
    tmp_path, request, processes, optuna_kind, mlflow_kind, jobs, grid, behave
):
    """3 agents released at the same instant on a fresh grid sweep: fresh storages, experiment, parent."""
    shared = tmp_path / "shared"
    shared.mkdir()
    record = shared / "records.jsonl"
    optuna_url = optuna_storage_url(optuna_kind, shared, request)
    mlflow_uri = mlflow_storage_url(mlflow_kind, shared, request)
    keys = grid_keys(optuna_url, mlflow_uri, record, behave=behave, grid=grid)
    agents = agent_configs(tmp_path, 3, **keys)

    seconds = run_agents(agents, processes, "-j", str(jobs), root=tmp_path)

    figures = check_sweep(
        agents, optuna_url=optuna_url, mlflow_uri=mlflow_uri, record=record, grid=grid,
        budget=len(grid_points(grid)), shared_dirs=[shared], jobs=jobs, seconds=seconds,
    )  # fmt: skip
    # The trials write to the same MLflow storage: their logs must be free of lock errors too.
    for agent in agents:
        for log in agent.output_dir.rglob("trial-*.log"):
            text = log.read_text(errors="replace")
            assert "database is locked" not in text, f"{log}:\n{text[-3000:]}"
    late = check_late_agent(tmp_path, keys, record=record, mlflow_uri=mlflow_uri, optuna_url=optuna_url)
    print(f"[{optuna_kind}/{mlflow_kind}] {figures}; late agent exited in {late:.1f} s")


@pytest.mark.extended
@pytest.mark.server
def test_agents_through_an_mlflow_tracking_server(tmp_path, mlflow_server, postgres_db, processes):
    """No shared files at all: MLflow over HTTP, Optuna on PostgreSQL, MLflow-project trials."""
    shared = tmp_path / "shared"
    shared.mkdir()
    record = shared / "records.jsonl"
    optuna_url = postgres_db("optuna")
    keys = grid_keys(optuna_url, mlflow_server, record, entry_point="train", project=str(PROJECT))
    keys.pop("command")
    agents = agent_configs(tmp_path, 3, **keys)

    seconds = run_agents(agents, processes, "-j", "2", root=tmp_path)

    figures = check_sweep(
        agents, optuna_url=optuna_url, mlflow_uri=mlflow_server, record=record, grid=GRID,
        budget=12, shared_dirs=[shared], jobs=2, seconds=seconds,
    )  # fmt: skip
    runs = mlflow_runs(mlflow_server)
    trial_runs = [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]
    assert all(r.data.metrics.get("score") is not None for r in trial_runs)
    # MLflow prints a run's URL (after reading the run once more) whenever a run on a server
    # ends: never in an agent's console, once per trial.
    for agent in agents:
        assert "View run" not in agent.output, agent.output
    # Trial logs are uploaded in the background on a server, and every one lands before the end.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    for run in trial_runs:
        logs = [a.path for a in client.list_artifacts(run.info.run_id) if a.path.endswith(".log")]
        assert logs == [f"trial-{run.data.tags['sweeper.trial']}.log"], logs
    print(f"[http/postgres] {figures}")


@pytest.mark.extended
def test_random_search_budget_is_shared_and_never_exceeded(tmp_path, processes):
    """3 agents x 3 workers (9 slots) on a random search whose whole budget is 7 trials."""
    shared = tmp_path / "shared"
    shared.mkdir()
    record = shared / "records.jsonl"
    optuna_url = f"sqlite:///{shared / 'optuna.db'}"
    mlflow_uri = f"sqlite:///{shared / 'mlflow.db'}"
    keys = {
        "command": f"python {TRAIN}",
        "algorithm": "random",
        "parameters": {
            "x": {"low": 0.0, "high": 10.0},
            "y": {"low": 0, "high": 1000, "type": "int"},
            "behave": "sleep:0.5",
            "record": str(record),
        },
        "max_trials": 7,
        "seed": 0,
        "optuna_storage": optuna_url,
        "mlflow_storage": mlflow_uri,
    }
    agents = agent_configs(tmp_path, 3, **keys)

    seconds = run_agents(agents, processes, "-j", "3", root=tmp_path)

    figures = check_sweep(
        agents, optuna_url=optuna_url, mlflow_uri=mlflow_uri, record=record, grid=None,
        budget=7, shared_dirs=[shared], jobs=3, seconds=seconds,
    )  # fmt: skip
    late = check_late_agent(tmp_path, keys, record=record, mlflow_uri=mlflow_uri, optuna_url=optuna_url)
    print(f"[random, max_trials=7] {figures}; late agent exited in {late:.1f} s")


@pytest.mark.extended
def test_start_agents_script(tmp_path, processes):
    """scripts/start_agents.py starts N agents on one config, waits, and reports failure."""
    script = REPO / "scripts" / "start_agents.py"
    record = tmp_path / "records.jsonl"
    grid = {"x": [1, 2], "y": [10, 20]}
    config = write_config(
        tmp_path, parameters={**grid, "behave": "ok", "record": str(record)},
        optuna_storage="sqlite:///optuna.db",
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, str(script), "2", str(config), "-j", "2"], cwd=tmp_path, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    processes.append(proc)
    out, _ = proc.communicate(timeout=AGENT_TIMEOUT)
    assert proc.returncode == 0, out
    executed = Counter(point(r["params"], grid) for r in read_records(record))
    assert executed == Counter(grid_points(grid)), f"{executed}\n{out}"
    for i in (1, 2):
        assert f"[agent {i}]" in out, out
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parents = [r for r in runs if r.data.tags.get("sweeper.role") == "parent"]
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert not lock_files(tmp_path)

    # Any agent failing makes the script fail, with the agent's own exit code.
    bad = write_config(tmp_path / "bad", parameters={"x": []})
    result = subprocess.run(
        [sys.executable, str(script), "2", str(bad)], cwd=tmp_path, env=cli_env(),
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "parameters.x" in result.stdout + result.stderr


@pytest.mark.extended
def test_the_report_lands_once_when_agents_finish_at_the_same_moment(tmp_path, processes):
    """3 agents x 2 workers hold all 6 trials at a gate; opened at once, every agent sees the sweep
    complete within milliseconds, and exactly one of them closes it: one report on the parent,
    each importance metric logged once, one COMPLETE close token."""
    from mlflow.tracking import MlflowClient

    shared = tmp_path / "shared"
    shared.mkdir()
    record, gate = shared / "records.jsonl", shared / "gate"
    optuna_url = f"sqlite:///{shared / 'optuna.db'}"
    mlflow_uri = f"sqlite:///{shared / 'mlflow.db'}"
    grid = {"x": [1, 2, 3], "y": [10, 20]}
    keys = grid_keys(optuna_url, mlflow_uri, record, behave=f"block:{gate}", grid=grid)
    agents = agent_configs(tmp_path, 3, **keys)

    release_agents(agents, processes, "-j", "2", root=tmp_path)
    deadline = time.monotonic() + 180
    while len(read_records(record)) < 6:
        assert time.monotonic() < deadline, "the 6 trials did not all start:\n" + outputs(agents)
        time.sleep(0.1)
    gate.touch()
    wait_agents(agents)
    assert [a.returncode for a in agents] == [0, 0, 0], outputs(agents)

    client = MlflowClient(tracking_uri=mlflow_uri)
    parents = [r for r in mlflow_runs(mlflow_uri) if r.data.tags.get("sweeper.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    files = sorted(f.path for f in client.list_artifacts(parent, "report"))
    for name in ("trials.csv", "report.html", "history.png", "importance.png", "parallel.png"):
        assert f"report/{name}" in files, files
    rows = client.download_artifacts(parent, "report/trials.csv", str(tmp_path))
    assert len(Path(rows).read_text().strip().splitlines()) == 1 + 6
    importance = [key for key in parents[0].data.metrics if key.startswith("importance/")]
    assert sorted(importance) == ["importance/x", "importance/y"]
    for key in importance:
        assert len(client.get_metric_history(parent, key)) == 1, f"{key} was logged more than once"

    import optuna

    tokens = optuna.load_study(study_name=STUDY + "#close", storage=optuna_url).get_trials(deepcopy=False)
    assert [t.state.name for t in tokens].count("COMPLETE") == 1, [t.state.name for t in tokens]
