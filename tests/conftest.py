"""Shared helpers: run the real CLI in a subprocess, write configs, read the real storages.

Server tests skip with a reason where a server is missing, unless MLFLOW_SWEEPER_REQUIRE_SERVERS=1
(set by .ci/run), where a missing server fails the test.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import forked_cli
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "project"
TRAIN = PROJECT / "train.py"
REQUIRE_SERVERS = os.environ.get("MLFLOW_SWEEPER_REQUIRE_SERVERS") == "1"


def _load(path: Path):
    """A module of the test project, loaded without putting the project on sys.path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prestarted = _load(PROJECT / "prestarted.py")

# Test modules that start no trial process: they run in seconds, and CI runs them (with the smoke
# sweep) a second time at the lowest MLflow and Optuna versions pyproject.toml declares.
IN_PROCESS_MODULES = {
    "test_algorithms.py",
    "test_cli_interrupt.py",
    "test_command_line.py",
    "test_companions.py",
    "test_compat.py",
    "test_constraints.py",
    "test_counts.py",
    "test_drift_message.py",
    "test_folders.py",
    "test_lookup.py",
    "test_device_rules.py",
    "test_outcome.py",
    "test_preflight.py",
    "test_protocol.py",
    "test_report_parallel.py",
    "test_refine.py",
    "test_schema.py",
    "test_secrets.py",
    "test_sensitivity.py",
    "test_space.py",
    "test_space_conditional.py",
    "test_storage_kinds.py",
    "test_trial_path.py",
    "test_whole_bounds.py",
    "test_ui_description.py",
    "test_warm_fit.py",
    "test_warm_takeover.py",
}
SMOKE_MODULES = {"test_smoke.py"}


def pytest_addoption(parser):
    parser.addoption(
        "--extended",
        action="store_true",
        help="also run the tests marked `extended`: end-to-end variants of what the default run "
        "already checks (more storages, signals, agents), about twice the default run's time",
    )


def _deselect(config, items, leave_out) -> None:
    """Leave out the items for which `leave_out(item)` is true, reporting them as deselected."""
    left_out = [item for item in items if leave_out(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not leave_out(item)]


def _runs_core_grid(item) -> bool:
    return item.path.name == "test_core.py" and "grid" in getattr(item, "fixturenames", ())


# Module-scoped fixtures that run a sweep or start a server, by module: under `--dist loadgroup`
# the tests using one go to one worker, so it runs once rather than once per worker that got one.
SHARED_MODULE_FIXTURES = {
    "test_core.py": ("grid", "three_sweeps"),
    "test_drift.py": ("finished_sweep",),
    "test_report.py": ("swept",),
    "test_real_projects.py": ("project_sweep",),
    "test_protocol.py": ("shared_proxies",),
    "test_mlflow_auth.py": ("auth_server",),
    "test_mlproject_python.py": ("bare_python",),
}


def _shared_fixture_group(item) -> str | None:
    used = getattr(item, "fixturenames", ())
    for fixture in SHARED_MODULE_FIXTURES.get(item.path.name, ()):
        if fixture in used:
            return f"{item.path.name}:{fixture}"
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = _shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if item.path.name in IN_PROCESS_MODULES:
            item.add_marker(pytest.mark.inprocess)
        elif item.path.name in SMOKE_MODULES:
            item.add_marker(pytest.mark.smoke)
    # test_smoke.py's sweep is test_core.py's grid, which more tests inspect: when both are
    # collected (the default run) the smoke test is left out; alone, or selected with `-m smoke`
    # (CI's lowest-versions pass), it runs.
    if "smoke" not in (config.getoption("-m") or "") and any(_runs_core_grid(item) for item in items):
        _deselect(config, items, lambda item: item.path.name in SMOKE_MODULES)
    if not (config.getoption("--extended") or "extended" in (config.getoption("-m") or "")):
        _deselect(config, items, lambda item: item.get_closest_marker("extended") is not None)


_PRESTARTED: list[str] = []  # this process's server of prestarted trials, started on first use


def prestarted_env() -> dict:
    """What lets this process's agents' test trials run in a fork of a process that has imported
    MLflow (tests/project/prestarted.py)."""
    if not _PRESTARTED:
        _PRESTARTED.append(prestarted.start_server())
    return {prestarted.PRESTARTED: _PRESTARTED[0]}


def cli_env(extra: dict | None = None) -> dict:
    """The environment a user's shell would give: this Python first on PATH, no inherited run;
    and the test trials' prestarted server."""
    env = dict(os.environ) | prestarted_env()
    for name in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, timeout: float = 240, env: dict | None = None, fresh: bool = False
) -> subprocess.CompletedProcess:
    """`python -m mlflow_sweeper ARGS` to its end: forked from a process that has imported what
    it needs (`forked_cli`), or started afresh where its environment changes Python's start, or
    where `fresh` asks for it."""
    env = cli_env(env)
    if not fresh and forked_cli.forkable(env):
        return forked_cli.run(args, cwd=cwd, env=env, timeout=timeout)
    return subprocess.run(
        forked_cli.command(args),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(
    *args: str, cwd: Path, env: dict | None = None, output: Path | None = None, barrier: tuple | None = None,
    whole_env: bool = False, prefix: tuple[str, ...] = (),
):  # fmt: skip
    """`python -m mlflow_sweeper ARGS` started, stdout and stderr together: forked as in `run_cli`
    (a `forked_cli.ForkedCli`) or else a `subprocess.Popen`. The output goes to `output`, or is
    what `communicate()` returns. `env` adds to `cli_env()`, or is the whole environment with
    `whole_env`. `barrier` (ready, go): the forked agent imports, touches `ready` and waits for
    `go` before it starts its sweep. `prefix` (a command that runs the CLI, like `nice`) starts
    it afresh."""
    env = dict(env) if whole_env else cli_env(env)
    if not prefix and forked_cli.forkable(env):
        return forked_cli.ForkedCli(args, cwd, env, output, barrier=barrier)
    assert barrier is None, "a barrier needs a forked agent"
    command = [*prefix, *forked_cli.command(args)]
    if output is None:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    with open(output, "wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture(autouse=True)
def _outages_waited_out():
    """An agent run in process and interrupted stops waiting out storage outages for the rest of
    its process; each test starts as an agent does, waiting them out."""
    from mlflow_sweeper.storages.retry import stop_waiting_out_outages

    stop_waiting_out_outages(False)
    yield
    stop_waiting_out_outages(False)


@pytest.fixture(autouse=True)
def _loggers_as_they_were():
    """The CLI run in process (click's CliRunner) sets up its loggers for a terminal: our logger
    stops propagating, so `caplog` would see nothing in whichever test runs next in the same
    worker. Each test gets the loggers back as they were."""
    import logging

    loggers = [logging.getLogger(name) for name in ("mlflow_sweeper", "mlflow", "optuna", "alembic")]
    saved = [(logger, logger.handlers[:], logger.propagate, logger.level) for logger in loggers]
    yield
    for logger, handlers, propagate, level in saved:
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)


# A command-mode grid sweep on SQLite stores next to the config: the default of write_config.
DEFAULT_CONFIG = {
    "experiment": "exp",
    "sweep_name": "s1",
    "command": f"python {TRAIN}",
    "parameters": {"x": [1, 2, 3], "y": [10, 20]},
    "mlflow_storage": "sqlite:///mlflow.db",
    "spec": {"direction": "maximize", "metric": "score"},
}


def write_config(directory: Path, name: str = "sweep.yaml", *, fresh_store: bool = False, **keys) -> Path:
    """A config file: DEFAULT_CONFIG with `keys` replacing its keys (None removes one).

    When the config keeps the default MLflow store (`mlflow.db` next to it) and none is there, an
    empty one is put there (`with_empty_mlflow_store`), unless `fresh_store`: the sweep then
    creates its store itself."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in keys.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    if "entry_point" in config:
        config.pop("command", None)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if not fresh_store and config.get("mlflow_storage") == DEFAULT_CONFIG["mlflow_storage"]:
        with_empty_mlflow_store(directory)
    return path


_EMPTY_STORES: list[Path] = []  # this process's template, made on first use


def empty_mlflow_store() -> Path:
    """An empty, real MLflow SQLite store to copy, made once per test process: a new store's
    migrations cost seconds."""
    if not _EMPTY_STORES:
        import atexit
        import shutil
        import tempfile

        from mlflow.tracking import MlflowClient

        root = Path(tempfile.mkdtemp(prefix="sweeper-empty-store-"))
        atexit.register(shutil.rmtree, root, True)
        cwd = os.getcwd()
        os.chdir(root)  # whatever the store creates next to itself stays there
        try:
            MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").search_experiments()
        finally:
            os.chdir(cwd)
        _EMPTY_STORES.append(root / "mlflow.db")
    return _EMPTY_STORES[0]


@pytest.fixture(scope="session")
def mlflow_template() -> Path:
    """`empty_mlflow_store()` as a fixture."""
    return empty_mlflow_store()


def with_empty_mlflow_store(directory: Path) -> Path:
    """`directory` with a copy of `empty_mlflow_store()` as `mlflow.db`, unless it has one."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "mlflow.db").exists():
        shutil.copyfile(empty_mlflow_store(), directory / "mlflow.db")
    return directory


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mlflow_runs(tracking_uri: str, experiment: str = "exp", deleted: bool = False) -> list:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    view = ViewType.ALL if deleted else ViewType.ACTIVE_ONLY
    return client.search_runs([exp.experiment_id], run_view_type=view, max_results=50000)


def optuna_trials(storage_url: str, study_name: str = "exp/s1") -> list:
    import optuna

    return optuna.load_study(study_name=study_name, storage=storage_url).get_trials(deepcopy=False)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if REQUIRE_SERVERS:
        pytest.fail(message + " (MLFLOW_SWEEPER_REQUIRE_SERVERS=1 forbids skipping)")
    pytest.skip(message)


def _postgres_databases():
    """A factory of fresh PostgreSQL databases (SQLAlchemy URLs) and the function dropping them."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import psycopg2

    created = []

    def make(prefix: str = "sweeper") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        conn.close()
        created.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    def drop_all() -> None:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        conn.autocommit = True
        for name in created:
            with contextlib.suppress(Exception):  # cleanup is best effort
                conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    return make, drop_all


@pytest.fixture
def postgres_db():
    """A factory of fresh PostgreSQL databases; returns SQLAlchemy URLs, drops them afterwards."""
    make, drop_all = _postgres_databases()
    yield make
    drop_all()


@pytest.fixture(scope="module")
def module_postgres_db():
    """As `postgres_db`, the databases kept for the whole module (for a server shared by its tests)."""
    make, drop_all = _postgres_databases()
    yield make
    drop_all()


class PrivatePostgres:
    """A PostgreSQL server of one test's own (initdb in a temporary directory, a free port), which
    the test may stop and start without disturbing the shared server other tests use."""

    def __init__(self, bindir: Path, root: Path, port: int):
        self.bindir, self.data, self.port = bindir, root / "data", port
        self.log = root / "server.log"
        self.socket_dir = root

    def _as_postgres(self, *argv: str, timeout: float = 120) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr or done.stdout}")

    def init(self) -> None:
        self._as_postgres("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture
def private_postgres():
    """A PostgreSQL server of the test's own; needs the server binaries (Debian's postgresql)."""
    import shutil
    import tempfile

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        message = "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
        if REQUIRE_SERVERS:
            pytest.fail(message + " (MLFLOW_SWEEPER_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(message)
    # Not under pytest's own temporary directory, which only its owner may enter.
    root = Path(tempfile.mkdtemp(prefix="sweeper-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(found[-1].parent, root, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mysql_db():
    """A factory of fresh MariaDB/MySQL databases (pymysql URLs), dropped afterwards."""
    require_server("MariaDB", "127.0.0.1", 3306)
    import pymysql

    created = []

    def make(prefix: str = "sweeper") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        conn.close()
        created.append(name)
        return f"mysql+pymysql://root@127.0.0.1:3306/{name}"

    yield make
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        for name in created:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture
def redis_url():
    """A Redis URL on a database index no other test uses at the same time, flushed before and after."""
    require_server("Redis", "127.0.0.1", 6379)
    import redis

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...: one index per worker
    index = 1 + (int(worker[2:]) if worker[2:].isdigit() else os.getpid() + uuid.uuid4().int) % 15
    client = redis.Redis(host="127.0.0.1", port=6379, db=index)
    client.flushdb()
    yield f"redis://127.0.0.1:6379/{index}"
    client.flushdb()


# ---- added for the distributed-sweep tests ------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now, chosen below the
    range the kernel hands out to outgoing connections: a port from that range (what binding port
    0 gives) can become the source port of another test's connection before the server binds it,
    and under `-n 4` there are many loopback connections."""
    import random

    chooser = random.SystemRandom()  # not the seeded generator some tests reset
    low = _ephemeral_low()
    for _ in range(100):
        port = chooser.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def kill_process_tree(proc) -> None:
    """SIGKILL a process started by a test (a Popen or a ForkedCli) and everything below it
    (trials, server workers), then reap it."""
    forked_cli.kill_tree(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a free loopback port, SQLite backend store and artifacts in tmp.

    Yields its http:// URL once it answers /health; stopped (with its workers) afterwards.
    """
    import contextlib
    import signal
    import time
    import urllib.error
    import urllib.request

    root = tmp_path / "mlflow-server"
    root.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
        "--default-artifact-root", (root / "artifacts").as_uri(),
    ]  # fmt: skip
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            # No job runner: its consumer processes cost seconds of CPU each, and no test uses it.
            argv, cwd=root, env=cli_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server silent on {url} for 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        kill_process_tree(proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


# ---- the gRPC storage proxy ----------------------------------------------------------------------


def start_proxy(storage_url: str, log_path: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """`mlflow-sweeper proxy STORAGE_URL [OPTIONS]` on a free port; returns the process and its
    grpc:// URL once the proxy answers."""
    for _ in range(5):
        port = free_port()
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow_sweeper", "proxy", storage_url, "--port", str(port), *options],
                env=cli_env(), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        url = f"grpc://127.0.0.1:{port}"
        if _proxy_answers(proc, url):
            return proc, url
        kill_process_tree(proc)
        if "port is in use" not in log_path.read_text():
            break  # a real failure; "in use": taken since free_port chose it, so another port
    pytest.fail(f"the proxy did not answer on {url}:\n{log_path.read_text()[-3000:]}")


HANG_GUARD_SECONDS = 600  # only a process that hangs waits this long; a loaded machine is slow, not hung


def _proxy_answers(proc: subprocess.Popen, url: str) -> bool:
    """Wait for the proxy to answer, however slowly it starts on a loaded machine; False once it
    has exited (or hangs past HANG_GUARD_SECONDS)."""
    import time

    from mlflow_sweeper.storages.grpc import open_grpc_storage

    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            open_grpc_storage(url, ready_seconds=5).close()
        except Exception:  # noqa: BLE001 - not serving yet
            continue
        return proc.poll() is None
    return False


def _proxies(directory: Path):
    """A factory of real proxy subprocesses (logs in `directory`) and the function stopping them."""
    started: list[subprocess.Popen] = []

    def make(storage_url: str) -> str:
        proc, url = start_proxy(storage_url, directory / f"proxy-{len(started)}.log")
        started.append(proc)
        return url

    def stop_all() -> None:
        for proc in started:
            kill_process_tree(proc)

    return make, stop_all


@pytest.fixture
def grpc_proxy(tmp_path):
    """A factory: grpc_proxy(storage_url) starts a real proxy subprocess, stopped afterwards."""
    make, stop_all = _proxies(tmp_path)
    yield make
    stop_all()


@pytest.fixture(scope="module")
def module_grpc_proxy(tmp_path_factory):
    """As `grpc_proxy`, each proxy kept for the whole module: starting one costs seconds, so tests
    that give their sweeps names of their own share one proxy per storage."""
    make, stop_all = _proxies(tmp_path_factory.mktemp("proxies"))
    yield make
    stop_all()
