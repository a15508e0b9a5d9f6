"""Every private MLflow or Optuna name the package relies on still exists in the installed versions."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mlflow_sweeper.compat import PRIVATE_NAMES

PROJECTS = Path(__file__).resolve().parent


@pytest.mark.parametrize(("module", "path"), PRIVATE_NAMES, ids=[f"{m}:{p}" for m, p in PRIVATE_NAMES])
def test_private_name_exists(module, path):
    target = importlib.import_module(module)
    for part in path.split("."):
        if isinstance(target, type) and part in getattr(target, "__annotations__", {}):
            return  # an instance attribute declared on the class
        if not hasattr(target, part) and isinstance(target, type):
            # instance attributes set in __init__: look for the name in the class's source
            import inspect

            assert part in inspect.getsource(target), f"{module}.{path}: {part} is gone"
            return
        target = getattr(target, part)


def test_compat_helpers_work_on_real_objects(tmp_path):
    import optuna
    from mlflow.tracking import MlflowClient

    from mlflow_sweeper import compat

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    first = compat.create_trial_numbered(storage, study._study_id)
    assert first[1] == 0
    assert compat.create_trial_numbered(storage, study._study_id)[1] == 1
    compat.forget_cached_trials(study)
    assert compat.study_storage(study) is not None

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    client.search_experiments()
    assert compat.sql_engine(client) is not None
    assert compat.can_hard_delete(client)
    run = client.create_run(client.create_experiment("e"))
    compat.hard_delete_run(client, run.info.run_id)


def test_trial_id_is_the_id_the_storage_knows(tmp_path):
    import optuna

    from mlflow_sweeper import compat

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({})
    study.enqueue_trial({})
    for trial in study.get_trials(deepcopy=False):
        assert storage.get_trial(compat.trial_id(trial)).number == trial.number


def test_mlflow_names_through_compat(tmp_path):
    from mlflow_sweeper import compat

    assert compat.mlflow_tags().MLFLOW_PARENT_RUN_ID == "mlflow.parentRunId"
    managers = compat.env_managers()
    assert (managers.LOCAL, managers.VIRTUALENV, managers.UV) == ("local", "virtualenv", "uv")
    assert compat.has_python_env(compat.load_project(str(PROJECTS / "project_real")))
    conda = tmp_path / "conda_project"
    conda.mkdir()
    (conda / "conda.yaml").write_text("name: p\ndependencies: [python]\n")
    (conda / "MLproject").write_text("name: p\nconda_env: conda.yaml\nentry_points: {main: {command: x}}\n")
    assert not compat.has_python_env(compat.load_project(str(conda)))

    artifacts = tmp_path / "artifacts"
    (artifacts / "model").mkdir(parents=True)
    (artifacts / "model" / "weights.bin").write_bytes(b"0")
    assert compat.local_artifact_path(artifacts.as_uri()) == str(artifacts)
    assert compat.local_artifact_path("s3://bucket/run/artifacts") is None
    compat.delete_artifacts(artifacts.as_uri())
    assert not (artifacts / "model" / "weights.bin").exists()
