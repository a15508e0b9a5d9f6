"""The config schema is one table: allowed keys, defaults, mutable keys and the resume hint
all come from it, and the README's config reference lists every key it has."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from mlflow_sweeper.config import (
    DEFAULTS,
    KEYS,
    MUTABLE_HINT,
    MUTABLE_KEYS,
    REQUIRED_KEYS,
    SCHEMA,
    SweepConfig,
    load_config,
)
from mlflow_sweeper.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"
MINIMAL = {"experiment": "exp", "sweep_name": "s1", "command": "python train.py", "parameters": {"x": [1, 2]}}


def write(tmp_path: Path, **keys) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, **keys}, sort_keys=False))
    return path


def test_keys_defaults_and_required_come_from_the_table():
    names = [key.name for key in SCHEMA]
    assert len(names) == len(set(names)) and set(names) == KEYS
    assert REQUIRED_KEYS == ("experiment", "sweep_name", "parameters")
    assert set(DEFAULTS) == KEYS - set(REQUIRED_KEYS)
    assert all(key.doc.strip() for key in SCHEMA)


def test_sweep_config_defaults_are_the_schema_defaults():
    fields = {f.name: f for f in dataclasses.fields(SweepConfig)}
    checked = 0
    for name, default in DEFAULTS.items():
        field = fields.get(name)
        if (
            field is None
            or field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        ):
            continue  # loaded into another shape (spec -> objective) or always given by the loader
        value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        assert value == default, name
        checked += 1
    assert checked >= 10


def test_mutable_keys_and_the_resume_hint_come_from_the_table():
    how_run = ("devices", "devices_per_trial", "device_env", "infeasible_when")  # this host's business
    failure_handling = {"max_trials", "max_retries", "stale_after", "trial_timeout", "fail_fast"}
    assert {*failure_handling, *how_run} == MUTABLE_KEYS
    assert MUTABLE_HINT == (
        "Besides how a trial is run (its command or entry point), only max_trials, max_retries, "
        "stale_after, trial_timeout, fail_fast, devices, devices_per_trial, device_env and "
        "infeasible_when may change on resume."
    )
    for name in KEYS - MUTABLE_KEYS - {"command"}:  # "its command" says how a trial is run
        assert not re.search(rf"\b{name}\b", MUTABLE_HINT), name
    assert "arg_style" not in MUTABLE_KEYS  # it changes what a trial runs


def test_a_minimal_config_gets_every_default(tmp_path):
    config = load_config(write(tmp_path))
    assert config.sampler_options == {} and config.arg_style == "name=value" and config.fail_fast == 3
    assert config.max_retries == 1 and config.stale_after == 300.0 and config.trial_timeout is None
    assert config.env_manager == "local" and config.backend == "local" and config.backend_config == {}
    assert "sampler_options" not in config.fingerprint()  # sweeps stored before the key still match


@pytest.mark.parametrize("style", ["name=value", "--name=value", "--name value"])
def test_arg_style_values(style, tmp_path):
    assert load_config(write(tmp_path, arg_style=style)).arg_style == style


@pytest.mark.parametrize(
    ("keys", "key", "fragment"),
    [
        ({"arg_style": "-name value"}, "arg_style", "--name=value"),
        ({"fail_fast": -1}, "fail_fast", "at least 0"),
        ({"fail_fast": "3"}, "fail_fast", "whole number"),
        ({"sampler_options": "n_startup_trials=5"}, "sampler_options", "mapping"),
        ({"sampler_options": {1: 2}}, "sampler_options", "mapping"),
    ],
)
def test_new_keys_are_validated(keys, key, fragment, tmp_path):
    path = write(tmp_path, **keys)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path.resolve()}: {key}: ") and fragment in str(caught.value)


def test_arg_style_only_with_command(tmp_path):
    config = {k: v for k, v in MINIMAL.items() if k != "command"}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**config, "entry_point": "main", "arg_style": "--name value"}))
    with pytest.raises(ConfigError, match=r"arg_style: only applies to 'command' trials"):
        load_config(path)


def test_keys_of_the_other_trial_kind_at_their_defaults_are_no_conflict(tmp_path):
    """A template's leftovers (`env_manager: local` under a `command`, the default `arg_style`
    under an `entry_point`) mean what leaving them out means; another value is refused."""
    defaults = {"project": ".", "env_manager": "local", "backend": "local", "backend_config": {}}
    assert load_config(write(tmp_path, **defaults)).env_manager == "local"
    with pytest.raises(ConfigError, match=r"env_manager: only applies to 'entry_point' trials"):
        load_config(write(tmp_path, env_manager="uv"))
    config = {k: v for k, v in MINIMAL.items() if k != "command"}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**config, "entry_point": "main", "arg_style": "name=value"}))
    assert load_config(path).entry_point == "main"


def test_a_sweep_name_takes_letters_of_any_script(tmp_path):
    assert load_config(write(tmp_path, sweep_name="ünïcode_扫描-1.2")).sweep_name == "ünïcode_扫描-1.2"
    decomposed = unicodedata.normalize("NFD", "café")  # e + a combining accent: the same name
    assert load_config(write(tmp_path, sweep_name=decomposed)).sweep_name == "café"
    with pytest.raises(ConfigError, match="use only letters"):
        load_config(write(tmp_path, sweep_name="bad name!"))


def test_fail_fast_zero_turns_it_off(tmp_path):
    assert load_config(write(tmp_path, fail_fast=0)).fail_fast == 0


def test_readme_config_reference_lists_every_key():
    text = README.read_text(encoding="utf-8")
    reference = text[text.index("## Config reference") :]
    reference = reference[: reference.index("```", reference.index("```yaml") + 7)]
    missing = [name for name in sorted(KEYS) if not re.search(rf"^#?\s*{name}:", reference, re.M)]
    assert not missing, f"README's config reference does not show {missing}"


def test_the_algorithm_names_come_from_the_registry():
    """The schema's doc is the registry's list; the README lists exactly the registry's names, in
    its config reference and in its "Choosing an algorithm" table."""
    from mlflow_sweeper.search.algorithms import ALGORITHMS

    assert next(key for key in SCHEMA if key.name == "algorithm").doc == " | ".join(ALGORITHMS)
    text = README.read_text(encoding="utf-8")
    reference = text[text.index("## Config reference") :]
    line = reference[reference.index("\nalgorithm:") : reference.index("\nsampler_options:")]
    comment = " ".join(part.split("#", 1)[1] for part in line.strip().splitlines())
    listed = [choice.split()[0] for choice in comment.split("|")]  # "grid (default)" -> "grid"
    assert listed == list(ALGORITHMS)
    table = text[text.index("## Choosing an algorithm") :]
    table = table[: table.index("\n\n", table.index("|---|"))]
    rows = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    in_table = [name for row in rows for name in re.findall(r"`([a-z0-9]+)`", row)]
    assert sorted(in_table) == sorted(ALGORITHMS)
