"""The companion studies explain themselves (study user attrs), and `status` and the agent notice
one that was deleted."""

from __future__ import annotations

import optuna
from conftest import write_config

from mlflow_sweeper.admin import sweep_status, sweep_status_data
from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy
from mlflow_sweeper.coordination.companions import gone_message
from mlflow_sweeper.coordination.names import COMPANION_OF_ATTR, PURPOSE_ATTR
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.storages import open_optuna_storage


def opened(tmp_path) -> tuple[SweepStudy, str]:
    config = load_config(write_config(tmp_path, parameters={"x": [1, 2], "y": [10]}))
    (tmp_path / "sweeps").mkdir(exist_ok=True)
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), "agent-1")
    study.create_or_find()
    return study, config


def test_each_companion_study_says_what_it_is_and_that_delete_removes_it(tmp_path):
    study, config = opened(tmp_path)
    assert study.closing.elect()  # the close election's study exists from the first election on
    url = config.optuna_storage
    for name, words in (("exp/s1#claims", "budget ledger"), ("exp/s1#close", "close election")):
        attrs = optuna.load_study(study_name=name, storage=url).user_attrs
        assert attrs[COMPANION_OF_ATTR] == "exp/s1"
        assert words in attrs[PURPOSE_ATTR] and "exp/s1" in attrs[PURPOSE_ATTR]
        assert "Do not delete it" in attrs[PURPOSE_ATTR] and "`mlflow-sweeper delete`" in attrs[PURPOSE_ATTR]
    assert optuna.load_study(study_name="exp/s1", storage=url).user_attrs.get(COMPANION_OF_ATTR) is None


def test_a_deleted_companion_is_missing_for_the_agent_and_status_says_so(tmp_path):
    study, config = opened(tmp_path)
    assert study.missing_studies() == []
    optuna.delete_study(study_name="exp/s1#claims", storage=config.optuna_storage)
    assert study.missing_studies() == ["exp/s1#claims"]
    message = gone_message("exp/s1", ["exp/s1#claims"])
    assert message.startswith("exp/s1: the sweep's companion study 'exp/s1#claims'")
    assert "mlflow-sweeper delete" in message

    assert sweep_status_data(config)["missing_companions"] == ["exp/s1#claims"]
    optuna.delete_study(study_name="exp/s1#claims", storage=config.optuna_storage)
    text = sweep_status(config)
    assert "warning: companion study 'exp/s1#claims' was deleted" in text, text


def test_the_sweep_itself_deleted_reads_as_before():
    assert gone_message("exp/s1", ["exp/s1", "exp/s1#claims"]) == (
        "exp/s1: the sweep was deleted while this agent ran it"
    )


def test_a_deleted_close_study_is_missing_once_the_agent_has_used_it(tmp_path):
    study, config = opened(tmp_path)
    assert study.missing_studies() == []  # no close election yet: nothing to miss
    assert study.closing.elect()
    optuna.delete_study(study_name="exp/s1#close", storage=config.optuna_storage)
    assert study.missing_studies() == ["exp/s1#close"]
    assert "companion study 'exp/s1#close'" in gone_message("exp/s1", ["exp/s1#close"])
