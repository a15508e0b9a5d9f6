"""Beyond one machine: Optuna's gRPC proxy end to end, an agent's database connections, idle
agents' polling, and the cluster recipes under examples/."""

from __future__ import annotations

import json
import math
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import (
    HANG_GUARD_SECONDS,
    REPO,
    free_port,
    kill_process_tree,
    run_cli,
    start_cli,
    start_proxy,
    write_config,
)
from optuna.study import StudyDirection
from test_distributed import (
    GRID,
    agent_configs,
    check_sweep,
    grid_keys,
    mlflow_runs,
    processes,  # noqa: F401 - a fixture
    run_agents,
)

from mlflow_sweeper.agent.idle import IdleBackoff
from mlflow_sweeper.storages import check_optuna_url
from mlflow_sweeper.storages.pools import AGENT_APPLICATION, agent_pools

GRPC_EXTRA = "pip install 'mlflow-sweeper[grpc]'"


# ---- the gRPC proxy ----------------------------------------------------------------------------


@pytest.mark.server
# Agents through a proxy: test_proxy_auth.py; a tracking server: test_mlflow_auth.py, test_ui.py.
@pytest.mark.extended
def test_three_agents_through_the_proxy_and_a_tracking_server(
    tmp_path,
    grpc_proxy,
    postgres_db,
    mlflow_server,
    processes,  # noqa: F811
):
    """3 agents x -j 2, Optuna through a proxy on PostgreSQL, MLflow through `mlflow server`:
    every grid point COMPLETE once, one parent, no duplicate."""
    shared = tmp_path / "shared"
    shared.mkdir()
    record = shared / "records.jsonl"
    database = postgres_db("optuna")
    proxy_url = grpc_proxy(database)
    keys = grid_keys(proxy_url, mlflow_server, record, behave="sleep:0.2")
    agents = agent_configs(tmp_path, 3, **keys)

    seconds = run_agents(agents, processes, "-j", "2", root=tmp_path)

    # Read behind the proxy, from the database itself.
    figures = check_sweep(
        agents, optuna_url=database, mlflow_uri=mlflow_server, record=record, grid=GRID,
        budget=len(GRID["x"]) * len(GRID["y"]), shared_dirs=[shared], jobs=2, seconds=seconds,
    )  # fmt: skip
    trial_runs = [r for r in mlflow_runs(mlflow_server) if r.data.tags.get("sweeper.role") == "trial"]
    assert all(r.data.metrics.get("score") is not None for r in trial_runs)
    print(f"[grpc/postgres + http] {figures}")


def test_bad_grpc_urls_are_named():
    assert check_optuna_url("grpc://127.0.0.1:13000") is None
    assert check_optuna_url("grpc://[::1]:13000") is None
    for bad in ("grpc://", "grpc://host:port", "grpc://host:1/path"):
        assert "grpc://HOST:PORT" in (check_optuna_url(bad) or ""), bad


def test_a_proxy_nobody_serves_is_one_clear_error(tmp_path):
    config = write_config(tmp_path, fresh_store=True, optuna_storage=f"grpc://127.0.0.1:{free_port()}")
    result = run_cli("sweep", config, cwd=tmp_path, timeout=HANG_GUARD_SECONDS)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot reach the Optuna gRPC proxy" in result.stderr
    assert "mlflow-sweeper proxy STORAGE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists(), "nothing may be written before the storages answer"


def test_the_proxy_refuses_a_journal_storage(tmp_path):
    journal = f"journal://{tmp_path / 'optuna.log'}"
    result = run_cli("proxy", journal, cwd=tmp_path, timeout=HANG_GUARD_SECONDS)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "serves a database storage" in result.stderr
    assert not (tmp_path / "optuna.log").exists()


def test_a_second_proxy_on_a_port_in_use_exits_2_and_the_first_goes_on(tmp_path):
    """gRPC binds with SO_REUSEPORT: without the check both proxies would listen on the port and
    share its agents at random, each with its own storage."""
    first, url = start_proxy(f"sqlite:///{tmp_path / 'first.db'}", tmp_path / "first.log")
    try:
        port = url.rsplit(":", 1)[1]
        second = run_cli(
            "proxy", f"sqlite:///{tmp_path / 'second.db'}", "--port", port, cwd=tmp_path,
            timeout=HANG_GUARD_SECONDS,
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        assert "port is in use" in second.stderr and "Traceback" not in second.stderr
        assert not (tmp_path / "second.db").exists()
        assert first.poll() is None
        first.send_signal(signal.SIGINT)  # Ctrl-C: stopped as interrupted, like any command
        assert first.wait(timeout=HANG_GUARD_SECONDS) == 130
        assert "proxy stopped" in (tmp_path / "first.log").read_text()
    finally:
        kill_process_tree(first)


def proxy_workers(proxy: subprocess.Popen) -> list[psutil.Process]:
    """The proxy's worker processes (started by multiprocessing's spawn)."""
    return [p for p in psutil.Process(proxy.pid).children() if "spawn_main" in " ".join(p.cmdline())]


def tcp_connections(process: psutil.Process, port: int, status: str) -> int:
    listing = getattr(process, "net_connections", process.connections)
    return sum(1 for c in listing(kind="tcp") if c.laddr and c.laddr.port == port and c.status == status)


def wait_for(condition, seconds: float = HANG_GUARD_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.server
def test_a_proxy_on_a_database_server_spreads_agents_over_its_worker_processes(
    tmp_path, postgres_db, monkeypatch
):
    """One Python process serves one call at a time, so on a database server the proxy serves one
    port from several processes, and each client has a connection of its own for the kernel to
    hand to one of them: every worker serves some clients (each checking the token), and trials
    created through all of them at once get each number once. SIGTERM stops them all."""
    from mlflow_sweeper import compat
    from mlflow_sweeper.errors import StorageError
    from mlflow_sweeper.proxy_auth import TOKEN_ENV
    from mlflow_sweeper.storages import open_optuna_storage

    token = tmp_path / "proxy.token"
    token.write_text("workers-token\n")
    monkeypatch.setenv(TOKEN_ENV, "workers-token")
    database = postgres_db("optuna")
    proxy, url = start_proxy(database, tmp_path / "proxy.log", "--workers", "2", "--token-file", str(token))
    try:
        workers = proxy_workers(proxy)
        assert len(workers) == 2
        port = int(url.rsplit(":", 1)[1])
        wait_for(lambda: all(tcp_connections(w, port, psutil.CONN_LISTEN) for w in workers))
        clients = [open_optuna_storage(url) for _ in range(16)]  # all 16 on one worker: odds 1 in 32,768
        study_id = clients[0].create_new_study([StudyDirection.MINIMIZE], "spread")
        created: list[tuple[int, int]] = []

        def create(client) -> None:
            for _ in range(5):
                created.append(compat.create_trial_numbered(client, study_id))

        threads = [threading.Thread(target=create, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=HANG_GUARD_SECONDS)
        assert sorted(number for _, number in created) == list(range(80))
        assert all(clients[0].get_trial(trial_id).number == number for trial_id, number in created)
        served = [tcp_connections(w, port, psutil.CONN_ESTABLISHED) for w in workers]
        assert all(served), served
        assert "2 worker processes" in (tmp_path / "proxy.log").read_text()
        monkeypatch.setenv(TOKEN_ENV, "wrong-token")
        for _ in range(8):  # on either worker
            with pytest.raises(StorageError, match="a wrong token"):
                open_optuna_storage(url)

        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(timeout=HANG_GUARD_SECONDS) == 130
        assert "proxy stopped" in (tmp_path / "proxy.log").read_text()
        assert not any(w.is_running() for w in workers)
    finally:
        kill_process_tree(proxy)


@pytest.mark.server
@pytest.mark.parametrize("killed", ["a worker", "the proxy"])
def test_a_proxy_never_serves_with_part_of_itself(tmp_path, postgres_db, killed):
    """A worker that dies stops the proxy and the other workers: a port served by part of the
    proxy would fail some agents only. A proxy killed outright (SIGKILL: no chance to stop its
    workers) is followed by its workers, which would otherwise serve the port on their own."""
    proxy, _ = start_proxy(postgres_db("optuna"), tmp_path / "proxy.log", "--workers", "2")
    try:
        workers = proxy_workers(proxy)
        (workers[0] if killed == "a worker" else proxy).kill()
        code = proxy.wait(timeout=HANG_GUARD_SECONDS)
        for worker in workers:
            worker.wait(timeout=HANG_GUARD_SECONDS)
        if killed == "a worker":
            log = (tmp_path / "proxy.log").read_text()
            assert code == 1 and "a proxy worker process ended" in log and "Traceback" not in log, log
    finally:
        kill_process_tree(proxy)


def test_trial_numbers_come_in_one_call_from_our_proxy_and_in_two_from_optunas_own(tmp_path):
    """Our proxy answers a new trial's id and number in one call; Optuna's own proxy (and an
    older one of ours) does not know that call, and the client falls back to creating the trial
    and reading it back."""
    from mlflow_sweeper import compat
    from mlflow_sweeper.storages import open_optuna_storage
    from mlflow_sweeper.storages.grpc import open_grpc_storage

    ours, our_url = start_proxy(f"sqlite:///{tmp_path / 'ours.db'}", tmp_path / "ours.log")
    port = free_port()
    serve_plain = (
        "import optuna; optuna.storages.run_grpc_proxy_server("
        f"optuna.storages.get_storage('sqlite:///{tmp_path / 'plain.db'}'), host='127.0.0.1', port={port})"
    )
    plain = subprocess.Popen(
        [sys.executable, "-c", serve_plain], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        plain_url = f"grpc://127.0.0.1:{port}"
        open_grpc_storage(plain_url, ready_seconds=HANG_GUARD_SECONDS).close()
        for url, one_call in ((our_url, True), (plain_url, False)):
            client = open_optuna_storage(url)
            study_id = client.create_new_study([StudyDirection.MINIMIZE], "numbered")
            created = [compat.create_trial_numbered(client, study_id) for _ in range(3)]
            assert [number for _, number in created] == [0, 1, 2], url
            assert [client.get_trial(trial_id).number for trial_id, _ in created] == [0, 1, 2]
            assert client._numbered_served is one_call
            with pytest.raises(KeyError):
                compat.create_trial_numbered(client, study_id + 1000)
    finally:
        kill_process_tree(ours)
        kill_process_tree(plain)


@pytest.fixture
def without_grpc(tmp_path) -> dict:
    """An environment in which `import grpc` fails, as where the [grpc] extra is not installed."""
    hide = tmp_path / "hide-grpc"
    hide.mkdir()
    (hide / "grpc.py").write_text("raise ImportError('No module named grpc')\n")
    return {"PYTHONPATH": str(hide)}


def test_without_the_grpc_extra_a_grpc_url_exits_2_naming_it(tmp_path, without_grpc):
    config = write_config(tmp_path, fresh_store=True, optuna_storage="grpc://127.0.0.1:13000")
    result = run_cli("sweep", config, cwd=tmp_path, env=without_grpc, timeout=HANG_GUARD_SECONDS)
    assert result.returncode == 2, result.stdout + result.stderr
    assert GRPC_EXTRA in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists(), "nothing may be written without the extra"


def test_without_the_grpc_extra_the_proxy_exits_2_naming_it(tmp_path, without_grpc):
    database = tmp_path / "optuna.db"
    result = run_cli(
        "proxy", f"sqlite:///{database}", cwd=tmp_path, env=without_grpc, timeout=HANG_GUARD_SECONDS
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert GRPC_EXTRA in result.stderr
    assert not database.exists(), "the proxy may not create its database without the extra"


# ---- an agent's database connections ------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 4, 16])
def test_agent_pools_stay_within_two_plus_half_the_workers(jobs):
    optuna_pool, mlflow_pool = agent_pools(jobs)
    assert optuna_pool.most + mlflow_pool.most <= 2 + math.ceil(jobs / 2)
    assert mlflow_pool.overflow >= 1  # MLflow reads an overflow of 0 as "its default"
    assert optuna_pool.size == mlflow_pool.size == 1


class AgentConnections:
    """Counts an agent's connections in pg_stat_activity, through one connection of its own (to
    the `postgres` database, so never counted): polling opens no connection per look."""

    def __init__(self, databases: list[str]):
        import psycopg2

        self.databases = databases
        self.conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        self.conn.autocommit = True

    def count(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = ANY(%s)",
                (AGENT_APPLICATION, self.databases),
            )
            return cur.fetchone()[0]

    def close(self) -> None:
        self.conn.close()


@pytest.mark.server
@pytest.mark.parametrize("jobs", [pytest.param(1, marks=pytest.mark.extended), 4])
def test_an_agent_holds_at_most_two_plus_half_its_workers_connections(tmp_path, postgres_db, jobs):
    """One agent on PostgreSQL (both storages), its connections counted in pg_stat_activity by
    their application_name while its trials run (the trials' own connections are theirs)."""
    optuna_url, mlflow_url = postgres_db("optuna"), postgres_db("mlflow")
    databases = [url.rsplit("/", 1)[1] for url in (optuna_url, mlflow_url)]
    record = tmp_path / "records.jsonl"
    grid = {"x": list(range(2 * jobs)), "y": [1]}
    config = write_config(tmp_path, **grid_keys(optuna_url, mlflow_url, record, behave="sleep:1", grid=grid))
    proc = start_cli("sweep", config, "-j", str(jobs), "-q", cwd=tmp_path)
    seen: list[int] = []
    connections = AgentConnections(databases)
    try:
        while proc.poll() is None:
            seen.append(connections.count())
            time.sleep(0.05)
        out = proc.communicate()[0]
    finally:
        connections.close()
        kill_process_tree(proc)
    assert proc.returncode == 0, out
    assert len(read_lines(record)) == 2 * jobs
    assert max(seen) >= 2, f"the agent's connections were never seen: {seen}"
    assert max(seen) <= 2 + math.ceil(jobs / 2), f"-j {jobs}: up to {max(seen)} connections"
    print(f"-j {jobs}: at most {max(seen)} agent connections")


@pytest.mark.server
def test_agent_threads_on_a_small_mlflow_pool_never_wait_for_a_connection(postgres_db, monkeypatch):
    """MLflow's database store opens a second session inside `log_batch` while its first is open:
    on the agent's small pool, workers that each held one connection and waited for a second
    stalled until the pool timed out (a `TimeoutError` from SQLAlchemy, after 30 s). The agent's
    client lets at most `pool.most - 1` calls run at once, so every call gets its connections."""
    from mlflow.entities import Metric, Param, RunTag

    from mlflow_sweeper.storages import open_mlflow_tracking
    from mlflow_sweeper.storages.pools import Pool

    pool = Pool(1, 1)  # what an agent with -j 1 or -j 2 gives MLflow
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", str(pool.size))
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", str(pool.overflow))
    client = open_mlflow_tracking(postgres_db("mlflow"), pool, AGENT_APPLICATION)
    experiment = client.create_experiment("pool")
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for n in range(15):
                run_id = client.create_run(experiment).info.run_id
                client.log_batch(
                    run_id,
                    metrics=[Metric("m", float(n), 0, 0)],
                    params=[Param("x", str(n)), Param("w", str(i))],
                    tags=[RunTag("t", "v")],
                )
                client.set_terminated(run_id, "FINISHED")
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], f"{type(errors[0]).__name__}: {errors[0]}"
    assert len(client.search_runs([experiment], max_results=100)) == 60


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ---- idle agents ---------------------------------------------------------------------------------


def test_idle_backoff_doubles_up_to_its_longest_and_starts_over_on_work():
    idle = IdleBackoff(first=0.5, longest=10.0)
    assert [idle.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    idle.reset()
    assert idle.next_delay() == 0.5


class CountingStop(threading.Event):
    """A stop event that records how many idle workers sleep at the same moment."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.sleeping = 0
        self.most = 0

    def wait(self, timeout=None) -> bool:
        with self.lock:
            self.sleeping += 1
            self.most = max(self.most, self.sleeping)
        try:
            return super().wait(timeout)
        finally:
            with self.lock:
                self.sleeping -= 1


def test_idle_workers_of_one_agent_look_for_work_one_at_a_time():
    idle = IdleBackoff(first=0.001, longest=0.004)
    stop = CountingStop()
    threads = [threading.Thread(target=lambda: [idle.wait(stop) for _ in range(10)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert idle.looks == 80
    assert stop.most == 1, f"{stop.most} idle workers slept before a look at once"


def test_a_stopping_agent_wakes_its_idle_workers():
    idle = IdleBackoff(first=60.0, longest=60.0)
    stop = threading.Event()
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(idle.wait(stop))) for _ in range(3)]
    for thread in threads:
        thread.start()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [True, True, True]


# ---- recipes -------------------------------------------------------------------------------------

EXAMPLES = REPO / "examples"


def test_the_kubernetes_job_runs_n_agents_of_one_sweep(tmp_path):
    docs = list(yaml.safe_load_all((EXAMPLES / "k8s" / "agents-job.yaml").read_text()))
    job = next(d for d in docs if d and d.get("kind") == "Job")
    spec = job["spec"]
    assert spec["parallelism"] >= 2 and spec["completions"] == spec["parallelism"]
    container = spec["template"]["spec"]["containers"][0]
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[:2] == ["mlflow-sweeper", "sweep"], argv
    config_map = next(d for d in docs if d and d.get("kind") == "ConfigMap")
    (config_path,) = [a for a in argv if a.endswith(".yaml")]
    name = Path(config_path).name
    (tmp_path / name).write_text(config_map["data"][name])
    assert_valid_sweep_invocation(argv, tmp_path / name)
    # the proxy takes only callers with the token, which both read from one Kubernetes Secret
    proxy = next(d for d in docs if d and d.get("kind") == "Deployment")["spec"]["template"]["spec"]
    proxy_argv = proxy["containers"][0]["command"]
    token_path = Path(proxy_argv[proxy_argv.index("--token-file") + 1])
    mounts = proxy["containers"][0]["volumeMounts"]
    mount = next(m for m in mounts if m["mountPath"] == str(token_path.parent))
    volume = next(v for v in proxy["volumes"] if v["name"] == mount["name"])
    (agent_token,) = [e for e in container["env"] if e["name"] == "SWEEPER_PROXY_TOKEN"]
    secret = {"name": volume["secret"]["secretName"], "key": token_path.name}
    assert agent_token["valueFrom"]["secretKeyRef"] == secret


def assert_valid_sweep_invocation(argv: list[str], config: Path) -> None:
    """The command line parses (`--help` after the options) and its config loads."""
    from click.testing import CliRunner

    from mlflow_sweeper.cli import main
    from mlflow_sweeper.config import load_config

    args = [a if not a.endswith(".yaml") else str(config) for a in argv[1:]]
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    loaded = load_config(config)
    assert loaded.optuna_storage.startswith(("grpc://", "postgresql://"))
    assert loaded.mlflow_storage.startswith("http")


def test_the_slurm_array_is_valid_bash_running_the_sweep():
    script = EXAMPLES / "slurm" / "agents.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "#SBATCH --array=" in text
    line = next(x for x in text.splitlines() if x.strip().startswith(("mlflow-sweeper sweep", "srun")))
    argv = shlex.split(line.split("srun", 1)[-1])
    assert argv[:2] == ["mlflow-sweeper", "sweep"], argv


def test_the_kubernetes_backend_example_is_a_valid_backend_config():
    backend_config = json.loads((EXAMPLES / "k8s" / "backend_config.json").read_text())
    assert set(backend_config) >= {"kube-context", "repository-uri", "kube-job-template-path"}
    template_path = EXAMPLES / "k8s" / backend_config["kube-job-template-path"]
    template = yaml.safe_load(template_path.read_text())
    assert template["kind"] == "Job"
    container = template["spec"]["template"]["spec"]["containers"][0]
    # MLflow fills these in: the image it built and the entry point's command.
    assert container["image"] == "{replaced with URI of Docker image created during Project execution}"
    assert container["command"] == ["{replaced with MLflow Project entry point command}"]
    sweep = yaml.safe_load((EXAMPLES / "k8s" / "sweep-on-kubernetes.yaml").read_text())
    assert sweep["backend"] == "kubernetes"
    assert sweep["backend_config"] == "backend_config.json"
    from mlflow_sweeper.config import load_config

    loaded = load_config(EXAMPLES / "k8s" / "sweep-on-kubernetes.yaml")  # a config that loads, as is
    assert loaded.algorithm == "tpe" and loaded.backend == "kubernetes"
