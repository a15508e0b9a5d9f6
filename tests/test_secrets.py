"""Redaction and `${VAR}` expansion, in process: what a sweep shows of its config."""

from __future__ import annotations

import logging

import pytest
import yaml

from mlflow_sweeper.config import load_config
from mlflow_sweeper.errors import ConfigError, ConfigProblem
from mlflow_sweeper.expansion import expand_config
from mlflow_sweeper.secrets import MASK, RedactingFilter, forget_all, redact, redact_value, remember
from mlflow_sweeper.storages import mask


@pytest.fixture(autouse=True)
def _fresh_memory():
    forget_all()
    yield
    forget_all()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://postgres:S3cretPW@127.0.0.1:5432/db", "postgresql+psycopg://postgres:***@127.0.0.1:5432/db"),
        ("redis://:R3disPW@host:6379/0", "redis://:***@host:6379/0"),
        ("mysql+pymysql://u:p%40ss@h/db?charset=utf8", "mysql+pymysql://u:***@h/db?charset=utf8"),
        ("postgresql://h/db?user=u&password=Qu3ryPW", "postgresql://h/db?user=u&password=***"),
        ("http://127.0.0.1:5000/path@x", "http://127.0.0.1:5000/path@x"),
        ("sqlite:///tmp/optuna.db", "sqlite:///tmp/optuna.db"),
        ("grpc://127.0.0.1:4000", "grpc://127.0.0.1:4000"),
    ],
)
def test_url_passwords_are_redacted(url, shown):
    assert redact(url) == shown
    assert mask(url) == shown  # the storages' mask is the same redaction


def test_a_url_password_is_redacted_wherever_it_shows_next():
    redact("postgresql://u:S3cretPW@h/db")
    assert redact("FATAL: password S3cretPW rejected") == f"FATAL: password {MASK} rejected"


def test_remembered_values_are_redacted_in_nested_values_and_short_ones_are_not():
    remember("tok-123456")
    remember("on")  # too short to hunt for in text
    assert redact_value({"a": ["x tok-123456 y", 3], "b": ("tok-123456",), "c": "on"}) == {
        "a": [f"x {MASK} y", 3],
        "b": (MASK,),
        "c": "on",
    }


def test_the_console_filter_redacts_formatted_records():
    remember("tok-123456")
    record = logging.LogRecord("mlflow_sweeper", logging.INFO, __file__, 1, "token %s", ("tok-123456",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == f"token {MASK}"


def test_expansion_takes_the_environment_defaults_and_literals():
    env = {"PGPASS": "S3cretPW", "EMPTY": ""}
    data = {
        "optuna_storage": "postgresql://u:${PGPASS}@h/db",
        "parameters": {"mode": ["${MODE:-fast}", "${EMPTY:-dflt}", "$${LITERAL}"]},
        "seed": 3,
    }
    assert expand_config(data, env) == {
        "optuna_storage": "postgresql://u:S3cretPW@h/db",
        "parameters": {"mode": ["fast", "dflt", "${LITERAL}"]},
        "seed": 3,
    }
    assert redact("S3cretPW") == MASK  # a value from the environment is remembered


def test_an_unset_variable_names_itself_and_its_key():
    with pytest.raises(ConfigProblem) as caught:
        expand_config({"command": {"args": ["python x.py ${NOT_SET_ANYWHERE}"]}}, {})
    assert caught.value.key == "command.args[0]"
    assert "NOT_SET_ANYWHERE" in str(caught.value)


def test_load_config_expands_and_an_unset_variable_is_exit_2(tmp_path, monkeypatch):
    path = tmp_path / "sweep.yaml"
    config = {
        "experiment": "exp",
        "sweep_name": "s1",
        "command": "python train.py --token ${SWEEPER_TEST_TOKEN}",
        "parameters": {"x": [1, 2]},
        "mlflow_storage": "sqlite:///mlflow.db",
    }
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SWEEPER_TEST_TOKEN", "tok-abcdef")
    loaded = load_config(path)
    assert loaded.command == "python train.py --token tok-abcdef"
    assert all("tok-abcdef" not in redact(value) for value in loaded.as_params().values())
    monkeypatch.delenv("SWEEPER_TEST_TOKEN")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == 2
    assert caught.value.key == "command" and "SWEEPER_TEST_TOKEN" in str(caught.value)
    assert str(path.resolve()) in str(caught.value)
