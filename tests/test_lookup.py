"""Finding a sweep's experiment in a real MLflow store."""

from __future__ import annotations

import logging

from conftest import with_empty_mlflow_store
from mlflow.tracking import MlflowClient

from mlflow_sweeper.record.lookup import find_experiment, get_or_create_experiment


def test_a_deleted_experiment_is_restored_and_the_user_told(tmp_path, caplog):
    client = MlflowClient(f"sqlite:///{with_empty_mlflow_store(tmp_path) / 'mlflow.db'}")
    experiment_id = client.create_experiment("exp")
    client.delete_experiment(experiment_id)
    with caplog.at_level(logging.WARNING, logger="mlflow_sweeper"):
        assert get_or_create_experiment(client, "exp") == experiment_id
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    assert "experiment 'exp' was deleted in MLflow; restored" in caplog.text
    caplog.clear()
    assert get_or_create_experiment(client, "exp") == experiment_id and not caplog.text  # said once


def test_find_never_creates(tmp_path):
    client = MlflowClient(f"sqlite:///{with_empty_mlflow_store(tmp_path) / 'mlflow.db'}")
    assert find_experiment(client, "missing") is None
    assert client.get_experiment_by_name("missing") is None
