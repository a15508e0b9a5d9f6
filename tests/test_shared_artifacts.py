"""A database tracking store whose experiment keeps artifacts on a local path: one warning when
an agent opens the sweep, saying how to set a shared location."""

from __future__ import annotations

import pytest
from conftest import run_cli, write_config

from mlflow_sweeper.shared_artifacts import shared_artifact_warning

PG = "postgresql://u@db.example:5432/mlflow"


@pytest.mark.parametrize(
    "tracking, location",
    [
        (PG, "./mlruns/1"),
        (PG, "/home/me/mlruns/1"),
        ("postgresql+psycopg2://u@h/db", "file:///home/me/mlruns/1"),
        ("mysql+pymysql://root@h/db", "mlruns/3"),
    ],
)
def test_a_database_store_with_local_artifacts_warns(tracking, location):
    warning = shared_artifact_warning(tracking, location)
    assert warning is not None and location in warning
    assert "other hosts" in warning
    assert "--artifact-location" in warning and "--artifacts-destination" in warning
    assert "mlflow_artifact_location" not in warning  # not a config key


@pytest.mark.parametrize(
    "tracking, location",
    [
        (PG, "s3://bucket/mlflow/1"),
        (PG, "mlflow-artifacts:/1"),
        (PG, "gs://bucket/1"),
        ("sqlite:///mlflow.db", "./mlruns/1"),  # one host's file, like its artifacts
        ("http://tracking:5000", "mlflow-artifacts:/1"),
        ("file:///tmp/mlruns", "/tmp/mlruns/1"),
        (PG, None),
    ],
)
def test_shared_or_single_host_locations_do_not_warn(tracking, location):
    assert shared_artifact_warning(tracking, location) is None


def test_a_sweep_on_postgresql_with_default_artifacts_warns_once(tmp_path, postgres_db):
    config = write_config(
        tmp_path, mlflow_storage=postgres_db("shared_art"), parameters={"x": [1], "y": [10]}
    )
    result = run_cli("sweep", config, cwd=tmp_path, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("agents on other hosts cannot read or write those artifacts") == 1, output
    assert "Traceback" not in output, output
