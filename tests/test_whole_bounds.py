"""A range with whole-number bounds and no `type` is sampled as floats: a warning at load says so."""

from __future__ import annotations

import logging

from conftest import write_config

from mlflow_sweeper.config import load_configs
from mlflow_sweeper.config.whole_bounds import whole_bound_warnings


def test_whole_bounds_without_a_type_warn_and_say_how_to_get_integers():
    (warning,) = whole_bound_warnings("sweep.yaml", {"hidden": {"low": 32, "high": 256}, "x": [1, 2]})
    assert warning.startswith("sweep.yaml: parameters.hidden: low 32 and high 256 are whole numbers")
    assert "sampled as floats" in warning
    assert "`type: int`" in warning


def test_typed_or_float_ranges_do_not_warn():
    parameters = {
        "hidden": {"low": 32, "high": 256, "type": "int"},
        "width": {"low": 32, "high": 256, "type": "float"},
        "lr": {"low": 0.0001, "high": 0.1, "log": True},
        "dropout": {"low": 0, "high": 1, "step": 0.1},
        "fixed": 3,
        "act": {"values": [1, 2]},
    }
    assert whole_bound_warnings("sweep.yaml", parameters) == []


def test_loading_a_config_to_run_warns_once_on_the_console(tmp_path, caplog):
    config = write_config(
        tmp_path, algorithm="random", max_trials=2, parameters={"hidden": {"low": 32, "high": 256}}
    )
    with caplog.at_level(logging.WARNING, logger="mlflow_sweeper"):
        (loaded,) = load_configs([str(config)], to_run=True)
    warnings = [r.getMessage() for r in caplog.records if "sampled as floats" in r.getMessage()]
    assert len(warnings) == 1 and "parameters.hidden" in warnings[0], caplog.text
    assert not loaded.space.axes["hidden"].is_int  # a warning, not a change of meaning
