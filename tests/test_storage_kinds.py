"""Storage kinds keyed by scheme: one parser, and per kind resolve, check, exists, probe, open."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_sweeper import storages
from mlflow_sweeper.config import resolve_storage_url
from mlflow_sweeper.errors import StorageError
from mlflow_sweeper.storages import kinds

BASE = Path("/cfg/dir")


@pytest.mark.parametrize(
    ("url", "scheme", "path", "query"),
    [
        ("sqlite:///rel.db", "sqlite", "rel.db", ""),
        ("sqlite:////abs/o.db?timeout=5", "sqlite", "/abs/o.db", "timeout=5"),
        ("sqlite+pysqlite:///rel.db", "sqlite", "rel.db", ""),
        ("sqlite:///:memory:", "sqlite", None, ""),
        ("journal:///abs/o.log", "journal", "/abs/o.log", ""),
        ("journal://rel/o.log", "journal", "rel/o.log", ""),
        ("postgresql+psycopg2://u:p@h:5432/db", "postgresql", None, ""),
        ("MySQL+pymysql://root@h/db?charset=utf8", "mysql", None, "charset=utf8"),
        ("redis://127.0.0.1:6379/0", "redis", None, ""),
        ("https://tracking.example", "https", None, ""),
        ("optuna.db", "", None, ""),
    ],
)
def test_one_parser(url, scheme, path, query):
    parsed = storages.parse(url)
    assert (parsed.scheme, parsed.path, parsed.query) == (scheme, path, query)


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:///rel.db", "sqlite:////cfg/dir/rel.db"),
        ("sqlite:///sub/rel.db?timeout=5", "sqlite:////cfg/dir/sub/rel.db?timeout=5"),
        ("sqlite:////abs/o.db", "sqlite:////abs/o.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("journal://rel.log", "journal:///cfg/dir/rel.log"),
        ("journal:rel.log", "journal:///cfg/dir/rel.log"),
        ("journal:///abs/o.log", "journal:///abs/o.log"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("http://h:5000", "http://h:5000"),
        ("databricks", "databricks"),
    ],
)
def test_resolve_makes_file_paths_absolute_against_the_config_directory(url, resolved):
    assert storages.resolve(url, BASE) == resolved
    assert resolve_storage_url(url, BASE) == resolved  # the name config always exported


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///o.db",
        "postgresql://postgres@127.0.0.1/x",
        "postgres://h/x",
        "mysql+pymysql://root@h/x",
        "mariadb://h/x",
        "journal:///tmp/o.log",
        "redis://h:6379/0",
        "rediss://h:6379/0",
    ],
)
def test_valid_optuna_urls(url):
    assert storages.check_optuna_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///m.db",
        "postgresql://h/x",
        "mysql+pymysql://h/x",
        "http://h:5000",
        "https://h",
        "databricks://profile",
        "databricks-uc://p",
    ],
)
def test_valid_mlflow_urls(url):
    assert storages.check_mlflow_url(url) is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("foo://x", "unknown Optuna storage"),
        ("optuna.db", "unknown Optuna storage"),
        ("sqlite:o.db", "names no SQLite file"),
        ("sqlite://o.db", "three slashes"),
        ("sqlite:///", "names no SQLite file"),
        ("sqlite:////", "names no SQLite file"),
        ("sqlite:////tmp", "names no SQLite file"),
        ("sqlite:///:memory:", "names no SQLite file"),
        ("journal:///", "needs a file path"),
        ("http://h:5000", "unknown Optuna storage"),
    ],
)
def test_bad_optuna_urls(url, fragment):
    assert fragment in (storages.check_optuna_url(url) or "")


@pytest.mark.parametrize("url", ["foo://x", "journal:///m.log", "redis://h/0"])
def test_bad_mlflow_urls(url):
    assert "unknown MLflow tracking URI" in (storages.check_mlflow_url(url) or "")


@pytest.mark.parametrize("url", ["sqlite:m.db", "sqlite://m.db", "sqlite:///", "sqlite://", "sqlite:////", "sqlite:////tmp/"])
def test_mlflow_sqlite_urls_that_name_no_file(url):
    assert "names no SQLite file" in (storages.check_mlflow_url(url) or "")
    with pytest.raises(StorageError, match="three slashes"):
        storages.probe_mlflow_storage(url)  # MLFLOW_TRACKING_URI is checked where it is probed


@pytest.mark.parametrize("url", ["mlruns", "./mlruns", "file:///tmp/mlruns"])
def test_mlflow_file_stores_are_refused_as_such(url):
    problem = storages.check_mlflow_url(url) or ""
    assert "MLflow's file store" in problem and "sqlite:///mlflow.db" in problem, problem


@pytest.mark.parametrize("url", ["databricks", "databricks-uc", "databricks://profile"])
def test_databricks_uris_are_remote_tracking_stores(url):
    assert storages.check_mlflow_url(url) is None
    assert kinds.is_remote_tracking(url) and isinstance(storages.mlflow_kind(url), kinds.MlflowDatabricks)


def test_every_scheme_has_one_kind_per_storage():
    assert set(kinds.OPTUNA_KINDS) == {
        "sqlite",
        *kinds.SERVER_RDB_SCHEMES,
        "journal",
        "redis",
        "rediss",
        "grpc",
        "grpcs",
    }
    assert set(kinds.MLFLOW_KINDS) == {
        "sqlite",
        *kinds.SERVER_RDB_SCHEMES,
        "http",
        "https",
        "databricks",
        "databricks-uc",
    }
    assert all(
        isinstance(k, storages.StorageKind)
        for k in (*kinds.OPTUNA_KINDS.values(), *kinds.MLFLOW_KINDS.values())
    )


def test_exists_tells_a_missing_file_without_creating_it(tmp_path):
    for url in (f"sqlite:///{tmp_path / 'o.db'}", f"journal://{tmp_path / 'o.log'}"):
        assert not storages.exists(url)
        assert list(tmp_path.iterdir()) == []
    (tmp_path / "o.db").touch()
    (tmp_path / "o.log").touch()
    assert storages.exists(f"sqlite:///{tmp_path / 'o.db'}?timeout=60")
    assert storages.exists(f"journal://{tmp_path / 'o.log'}")
    for url in ("sqlite:///:memory:", "postgresql://h/x", "redis://h/0", "http://h", "databricks"):
        assert storages.exists(url), url  # a server cannot be told without connecting


def test_file_backed_kinds_open_and_then_exist(tmp_path):
    for url in (f"sqlite:///{tmp_path / 'a' / 'o.db'}", f"journal://{tmp_path / 'b' / 'o.log'}"):
        storages.probe_optuna_storage(url)  # a local file: nothing to reach, nothing written
        assert not storages.exists(url)
        storage = storages.open_optuna_storage(url)
        storage.create_new_study([], "probe")
        assert storages.exists(url)
    client = storages.open_mlflow_tracking(f"sqlite:///{tmp_path / 'm.db'}")
    assert client.search_experiments(max_results=1) is not None
    assert storages.exists(f"sqlite:///{tmp_path / 'm.db'}")


def test_a_sqlite_file_that_cannot_be_used_is_refused_by_its_probe_writing_nothing(tmp_path):
    """A text file named as the MLflow store, or a file under a file: exit 2 before the Optuna
    storage's file is made (its probe comes first, then the MLflow store's, then the writes)."""
    from conftest import run_cli, write_config

    (tmp_path / "notes.db").write_text("not a database\n")
    (tmp_path / "plain").write_text("a file, not a folder\n")
    for store, said in [("notes.db", "file is not a database"), ("plain/m.db", "is not a folder")]:
        optuna_db = tmp_path / "st" / "o.db"
        stores = {"mlflow_storage": f"sqlite:///{store}", "optuna_storage": "sqlite:///st/o.db"}
        config = write_config(tmp_path, fresh_store=True, **stores)
        result = run_cli("sweep", config, cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"cannot open the MLflow storage sqlite:///{tmp_path / store}: " in result.stderr
        assert said in result.stderr and "timeout=" not in result.stderr
        assert not optuna_db.exists() and not (tmp_path / "st").exists()
    storages.probe_mlflow_storage(f"sqlite:///{tmp_path / 'new' / 'm.db'}")  # a new file: fine
    client = storages.open_mlflow_tracking(f"sqlite:///{tmp_path / 'm.db'}")
    client.search_experiments(max_results=1)
    storages.probe_mlflow_storage(f"sqlite:///{tmp_path / 'm.db'}?timeout=60")  # a database: fine
    with pytest.raises(StorageError, match="file is not a database"):
        storages.probe_optuna_storage(f"sqlite:///{tmp_path / 'notes.db'}")


def test_a_relative_sqlite_url_of_an_existing_store_probes(tmp_path, monkeypatch):
    """MLFLOW_TRACKING_URI=sqlite:///mlruns.db (MLflow's own form) and a proxy's URL reach the
    probe as written, relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    storages.open_mlflow_tracking("sqlite:///m.db").search_experiments(max_results=1)
    storages.probe_mlflow_storage("sqlite:///m.db")
    (tmp_path / "notes.db").write_text("not a database\n")
    with pytest.raises(StorageError, match="file is not a database"):
        storages.probe_optuna_storage("sqlite:///notes.db")


def test_a_sqlite_store_opened_again_in_one_process_is_tuned_once(tmp_path):
    """MLflow hands every client of a URI one store: opening it again (a second thread, a second
    part of the agent) neither adds our listeners again nor drops the pool under another thread's
    connection, which raced SQLAlchemy's first connect ('deque mutated during iteration')."""
    from mlflow_sweeper.compat import sql_engine

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = sql_engine(storages.open_mlflow_tracking(url))
    pool, listeners = engine.pool, len(engine.pool.dispatch.connect)
    again = sql_engine(storages.open_mlflow_tracking(url))
    assert again is engine and again.pool is pool
    assert len(again.pool.dispatch.connect) == listeners


@pytest.mark.server
def test_a_postgresql_store_opened_again_in_one_process_names_its_connections_once(postgres_db, monkeypatch):
    from mlflow_sweeper.compat import sql_engine
    from mlflow_sweeper.storages.pools import AGENT_APPLICATION, MLFLOW_POOL_VARIABLES, Pool

    for variable in MLFLOW_POOL_VARIABLES:
        monkeypatch.setenv(variable, "2")
    url = postgres_db()
    client = storages.open_mlflow_tracking(url, Pool(1, 1), AGENT_APPLICATION)
    engine = sql_engine(client)
    pool, listeners = engine.pool, len(engine.pool.dispatch.connect)
    again = storages.open_mlflow_tracking(url, Pool(1, 1), AGENT_APPLICATION)
    assert sql_engine(again) is engine and engine.pool is pool
    assert len(engine.pool.dispatch.connect) == listeners
    with engine.connect() as connection:
        named = connection.exec_driver_sql("SELECT current_setting('application_name')").scalar()
    assert named == AGENT_APPLICATION


def test_unknown_scheme_at_open_or_probe_is_one_storage_error():
    for call in (storages.probe_optuna_storage, storages.open_optuna_storage):
        with pytest.raises(StorageError, match="unknown Optuna storage"):
            call("foo://x")
    with pytest.raises(StorageError, match="unknown MLflow tracking URI"):
        storages.probe_mlflow_storage("foo://x")
    with pytest.raises(StorageError, match="MLflow's file store"):
        storages.probe_mlflow_storage("mlruns")


def test_mask_hides_the_password():
    assert storages.mask("postgresql://user:secret@h/db") == "postgresql://user:***@h/db"


@pytest.mark.server
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "mysql+pymysql://root@127.0.0.1:3306/mysql",
        "redis://127.0.0.1:6379/0",
    ],
)
def test_server_kinds_probe_a_running_server(url):
    storages.probe_optuna_storage(url)


@pytest.mark.server
def test_server_rdb_probe_of_a_closed_port_is_one_storage_error():
    with pytest.raises(StorageError, match="cannot reach the Optuna storage"):
        storages.probe_optuna_storage("postgresql://postgres@127.0.0.1:1/x")


def test_a_sqlite_store_another_process_is_creating_is_waited_for(tmp_path):
    """Another process's migrations (`mlflow ui` on the same new file) fail an open in many ways: a
    new file's open is tried again once the file is quiet; an old file's odd error is not retried,
    and nothing is retried on a file that cannot be opened at all."""
    import os
    import time

    from mlflow_sweeper.errors import StorageError
    from mlflow_sweeper.storages.opening import _open_safely

    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    errors = [KeyError("dimension_attributes"), RuntimeError("Online migration expected to match one row")]

    def half_made():
        if errors:
            raise errors.pop(0)
        return "opened"

    assert _open_safely(url, half_made, "MLflow storage", lambda _: None, immediate=False) == "opened"
    assert errors == []

    old = tmp_path / "old.db"
    old.write_bytes(b"")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    calls = []

    def broken():
        calls.append(1)
        raise KeyError("dimension_attributes")

    with pytest.raises(StorageError, match="cannot open the MLflow storage .*dimension_attributes"):
        _open_safely(f"sqlite:///{old}", broken, "MLflow storage", lambda _: None, immediate=False)
    assert len(calls) == 1


def test_a_bare_mysql_url_without_mysqlclient_says_to_write_pymysql():
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("mysqlclient is installed here: the bare URL works")
    with pytest.raises(StorageError, match=r"write mysql\+pymysql://"):
        storages.probe_optuna_storage("mysql://root@127.0.0.1:1/x")


@pytest.mark.server
def test_status_and_delete_of_a_sweep_in_fresh_databases_create_no_tables(tmp_path, postgres_db):
    """A fresh database holds no sweep: `status` and `delete` say so without opening it (Optuna's
    and MLflow's stores create their tables when opened)."""
    import sqlalchemy
    from click.testing import CliRunner
    from conftest import write_config

    from mlflow_sweeper.cli import main

    optuna_url, mlflow_url = postgres_db(), postgres_db()
    assert not storages.exists(optuna_url) and not storages.exists(mlflow_url)
    config = write_config(tmp_path, optuna_storage=optuna_url, mlflow_storage=mlflow_url)
    for command in (["status"], ["delete", "--yes"]):
        result = CliRunner().invoke(main, [*command, str(config)])
        assert result.exit_code == 0, result.output
    for url in (optuna_url, mlflow_url):
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            assert sqlalchemy.inspect(conn).get_table_names() == [], url
        engine.dispose()
    storages.open_optuna_storage(optuna_url)  # its tables made: now it may hold a sweep
    assert storages.exists(optuna_url)
