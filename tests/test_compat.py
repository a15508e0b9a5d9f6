"""Every private MLflow or Optuna name the package relies on still exists in the installed versions."""

from __future__ import annotations

import importlib

import pytest

from mlflow_sweeper.compat import PRIVATE_NAMES


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
