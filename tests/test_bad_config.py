"""Bad input: every malformed config or input exits 2.

Each case must give exactly one message, naming the config file and the offending key, with no
traceback, and must write nothing: the tmp directory is compared, recursively, before and after.

The table runs the real CLI in-process through click's CliRunner (it captures the process's
stdout and stderr, so a traceback printed by the product or by logging would show, and an
exception escaping the CLI is seen as such). A few cases also run as real subprocesses, which
covers what in-process cannot: interpreter start-up, warnings pytest would swallow, exit status.
The unreachable-server cases are subprocesses too: they wait on real connection attempts.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from conftest import DEFAULT_CONFIG, PROJECT, run_cli, write_config
from mlflow.tracking import MlflowClient

from mlflow_sweeper.cli import main

# ---- helpers -----------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and directory under root: kind, size and modification time."""
    listing: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            stat = path.lstat()
            kind = "dir" if path.is_dir() else "file"
            size = 0 if kind == "dir" else stat.st_size
            listing[str(path.relative_to(root))] = (kind, size, stat.st_mtime_ns)
    return listing


def assert_nothing_written(before: dict, after: dict) -> None:
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (created or removed or changed), f"created {created}, removed {removed}, changed {changed}"


def the_message(stdout: str, stderr: str) -> str:
    """The one line of output a bad config gives; fails when there are more (or none)."""
    lines = [line for line in (stdout + "\n" + stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one message, got {len(lines)} lines:\n" + "\n".join(lines)
    return lines[0]


def raw(directory: Path, name: str, config: dict) -> Path:
    """A config file with exactly these keys (write_config forbids some combinations)."""
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def text(directory: Path, name: str, content: str) -> Path:
    path = directory / name
    path.write_text(content)
    return path


BASE = DEFAULT_CONFIG
RANDOM_FLOAT = {"algorithm": "random", "max_trials": 2}
ENTRY = {**{k: v for k, v in BASE.items() if k != "command"}, "entry_point": "train", "project": str(PROJECT)}


@dataclass
class Case:
    """A bad input: `make(tmp)` writes it and returns (CLI args, the file the message must name)."""

    make: Callable[[Path], tuple[list[str], Path]]
    key: str | None  # the key the message names right after the file, None for a file-level error
    also: tuple[str, ...] = ()  # further fragments the message contains (case-insensitive)


def keys(**changes) -> Callable[[Path], tuple[list[str], Path]]:
    """The default valid config with these keys changed (None removes a key)."""

    def make(tmp: Path) -> tuple[list[str], Path]:
        path = write_config(tmp, **changes)
        return [str(path)], path

    return make


def mapping(config: dict) -> Callable[[Path], tuple[list[str], Path]]:
    def make(tmp: Path) -> tuple[list[str], Path]:
        path = raw(tmp, "sweep.yaml", config)
        return [str(path)], path

    return make


def content(body: str) -> Callable[[Path], tuple[list[str], Path]]:
    def make(tmp: Path) -> tuple[list[str], Path]:
        path = text(tmp, "sweep.yaml", body)
        return [str(path)], path

    return make


def missing_file(tmp: Path) -> tuple[list[str], Path]:
    path = tmp / "no-such-config.yaml"
    return [str(path)], path


def directory(tmp: Path) -> tuple[list[str], Path]:
    path = tmp / "configs.yaml"
    path.mkdir()
    return [str(path)], path


def unreadable(tmp: Path) -> tuple[list[str], Path]:
    path = write_config(tmp)
    path.chmod(0)
    try:
        with open(path):
            pass
    except PermissionError:
        return [str(path)], path
    path.chmod(0o644)
    pytest.skip("chmod 000 does not make a file unreadable for this user (root): nothing to test")


def second_in_comma_list_bad(tmp: Path) -> tuple[list[str], Path]:
    good = write_config(tmp, name="good.yaml", sweep_name="good")
    bad = write_config(tmp, name="bad.yaml", sweep_name="bad", max_trials="ten")
    return [f"{good},{bad}"], bad


def second_argument_bad(tmp: Path) -> tuple[list[str], Path]:
    good = write_config(tmp, name="good.yaml", sweep_name="good")
    bad = write_config(tmp, name="bad.yaml", sweep_name="bad", spec={"direction": "up", "metric": "score"})
    return [str(good), str(bad)], bad


def one_sweep_defined_twice(tmp: Path) -> tuple[list[str], Path]:
    first = write_config(tmp, name="first.yaml", parameters={"x": [1], "y": [10]})
    second = write_config(tmp, name="second.yaml", parameters={"x": [1, 2], "y": [10]})
    return [str(first), str(second)], second


CASES = {
    # required keys
    "missing-experiment": Case(keys(experiment=None), "experiment", ("missing",)),
    "missing-sweep_name": Case(keys(sweep_name=None), "sweep_name", ("missing",)),
    "missing-parameters": Case(keys(parameters=None), "parameters", ("missing",)),
    "empty-experiment": Case(keys(experiment=""), "experiment"),
    "sweep_name-space-and-slash": Case(keys(sweep_name="my sweep/1"), "sweep_name", ("my sweep/1",)),
    "sweep_name-colon": Case(keys(sweep_name="a:b"), "sweep_name", ("a:b",)),
    "sweep_name-trailing-newline": Case(keys(sweep_name="nl\n"), "sweep_name", ("letters",)),
    # unknown keys
    "misspelt-parameters": Case(
        keys(parameters=None, paramters={"x": [1, 2]}), "paramters", ("did you mean 'parameters'",)
    ),
    "unknown-top-level-key": Case(keys(colour="blue"), "colour", ("unknown",)),
    # wrong types and values
    "parameter-name-too-long": Case(keys(parameters={"x" * 251: [1, 2]}), "parameters.xxxx", ("250",)),
    "max_trials-string": Case(keys(max_trials="ten"), "max_trials", ("ten",)),
    "max_trials-zero": Case(keys(max_trials=0), "max_trials"),
    "max_trials-bool": Case(keys(max_trials=True), "max_trials"),
    "seed-negative": Case(keys(seed=-1), "seed"),
    "max_retries-negative": Case(keys(max_retries=-1), "max_retries"),
    # a value shown as written in YAML, not as Python shows it (True, a tuple)
    "max_retries-bool": Case(keys(max_retries=True), "max_retries", ("got true",)),
    "infeasible_when-empty": Case(
        mapping({**DEFAULT_CONFIG, "infeasible_when": None}), "infeasible_when", ("default ([CUDA out",)
    ),
    "stale_after-zero": Case(keys(stale_after=0), "stale_after"),
    "trial_timeout-string": Case(keys(trial_timeout="x"), "trial_timeout"),
    # parameters
    "empty-grid-list": Case(keys(parameters={"x": [], "y": [1]}), "parameters.x", ("empty",)),
    "empty-parameters": Case(keys(parameters={}), "parameters", ("empty",)),
    "parameters-is-a-list": Case(keys(parameters=[1, 2]), "parameters"),
    "low-greater-than-high": Case(
        keys(parameters={"lr": {"low": 1.0, "high": 0.1}}, **RANDOM_FLOAT), "parameters.lr", ("low", "high")
    ),
    "nan-bound": Case(
        keys(parameters={"lr": {"low": float("nan"), "high": 0.1}}, **RANDOM_FLOAT),
        "parameters.lr.low",
        ("finite",),
    ),
    "infinite-bound": Case(
        keys(parameters={"lr": {"low": 0.0, "high": float("inf")}}, **RANDOM_FLOAT),
        "parameters.lr.high",
        ("finite",),
    ),
    "grid-float-range-without-step": Case(
        keys(parameters={"lr": {"low": 0.0, "high": 1.0}}), "parameters.lr", ("step",)
    ),
    "log-range-low-zero": Case(
        keys(parameters={"lr": {"low": 0.0, "high": 1.0, "log": True}}, **RANDOM_FLOAT),
        "parameters.lr.low",
        ("log",),
    ),
    "log-range-low-negative": Case(
        keys(parameters={"lr": {"low": -1.0, "high": 1.0, "log": True}}, **RANDOM_FLOAT),
        "parameters.lr.low",
        ("log",),
    ),
    "unknown-key-in-parameter": Case(
        keys(parameters={"lr": {"low": 0.0, "high": 1.0, "stepp": 0.1}}), "parameters.lr.stepp", ("unknown",)
    ),
    "range-type-unknown": Case(
        keys(parameters={"n": {"low": 1, "high": 4, "type": "complex"}}), "parameters.n.type", ("complex",)
    ),
    "int-range-fractional-bound": Case(
        keys(parameters={"n": {"low": 1.5, "high": 4, "type": "int"}}), "parameters.n.low", ("1.5",)
    ),
    "grid-value-listed-twice": Case(keys(parameters={"x": [1, 1]}), "parameters.x", ("twice",)),
    # algorithm
    "random-without-max_trials": Case(
        keys(algorithm="random", parameters={"lr": {"low": 0.0, "high": 1.0}}), "max_trials", ("random",)
    ),
    "tpe-without-max_trials": Case(keys(algorithm="tpe"), "max_trials", ("tpe",)),
    "tpe-without-spec": Case(keys(algorithm="tpe", max_trials=3, spec=None), "spec", ("tpe", "grid")),
    "unknown-algorithm": Case(keys(algorithm="bayes"), "algorithm", ("bayes",)),
    # spec
    "bad-direction": Case(keys(spec={"direction": "up", "metric": "score"}), "spec.direction", ("up",)),
    "spec-without-metric": Case(keys(spec={"direction": "maximize"}), "spec.metric", ("missing",)),
    "unknown-spec-key": Case(keys(spec={"direction": "maximize", "metric": "s", "goal": 1}), "spec.goal"),
    "misspelt-spec-key": Case(
        keys(spec={"direction": "maximize", "metrc": "s"}), "spec.metrc", ("did you mean 'metric'",)
    ),
    "spec-not-a-mapping": Case(keys(spec="maximize"), "spec"),
    # what a trial runs
    "both-entry_point-and-command": Case(
        mapping({**ENTRY, "command": BASE["command"]}), "entry_point", ("command",)
    ),
    "neither-entry_point-nor-command": Case(keys(command=None), "command", ("entry_point",)),
    "empty-command": Case(keys(command=""), "command"),
    "one-database-for-both-storages": Case(
        keys(optuna_storage="sqlite:///same.db", mlflow_storage="sqlite:///same.db"),
        "mlflow_storage",
        ("optuna_storage",),
    ),
    "conditional-placeholder-sharing-an-argument": Case(
        keys(
            command="python t.py --cfg={opt},{mom}",
            parameters={"opt": ["a", "b"], "mom": {"values": [1, 2], "when": {"opt": "b"}}},
        ),
        "command",
        ("{mom}", "{opt}"),
    ),
    "unknown-env_manager": Case(mapping({**ENTRY, "env_manager": "docker"}), "env_manager", ("docker",)),
    "backend_config-missing-json": Case(
        mapping({**ENTRY, "backend_config": "nope.json"}), "backend_config", ("nope.json",)
    ),
    # storages
    "unknown-optuna-scheme": Case(keys(optuna_storage="foo://x"), "optuna_storage", ("foo://x",)),
    "unknown-mlflow-scheme": Case(keys(mlflow_storage="foo://x"), "mlflow_storage", ("foo://x",)),
    "optuna-storage-not-a-url": Case(keys(optuna_storage="optuna.db"), "optuna_storage"),
    "mlflow-sqlite-two-slashes": Case(keys(mlflow_storage="sqlite://m.db"), "mlflow_storage", ("slashes",)),
    "optuna-sqlite-no-file": Case(keys(optuna_storage="sqlite:///"), "optuna_storage", ("no SQLite file",)),
    # the file itself
    "yaml-syntax-error": Case(
        content("experiment: exp\nsweep_name: [s1\nparameters: {x: [1, 2]}\n"), None, ("yaml", "line")
    ),
    "yaml-list-not-mapping": Case(content("- experiment: exp\n- sweep_name: s1\n"), None, ("mapping",)),
    "yaml-scalar-not-mapping": Case(content("just a string\n"), None, ("mapping",)),
    "empty-file": Case(content(""), None, ("empty",)),
    "key-given-twice": Case(
        content("experiment: exp\nsweep_name: s1\nsweep_name: s2\ncommand: 'true'\nparameters: {x: [1]}\n"),
        None,
        ("sweep_name", "twice", "line 3"),
    ),
    "parameter-given-twice": Case(
        content("experiment: exp\nsweep_name: s1\ncommand: 'true'\nparameters: {x: [1, 2], x: [3]}\n"),
        None,
        ("'x'", "twice"),
    ),
    # a key present with no value (YAML null)
    "required-key-without-value": Case(
        content("experiment: exp\nsweep_name:\ncommand: 'true'\nparameters: {x: [1]}\n"),
        "sweep_name",
        ("no value",),
    ),
    "defaulted-key-without-value": Case(
        mapping({**ENTRY, "backend": None}), "backend", ("no value", "local")
    ),
    "missing-file": Case(missing_file, None, ("no such file",)),
    "directory-as-config": Case(directory, None, ("directory",)),
    "unreadable-file": Case(unreadable, None, ("read",)),
    # several configs: one bad file stops everything before the first sweep starts
    "second-in-comma-list-invalid": Case(second_in_comma_list_bad, "max_trials", ("ten",)),
    "second-argument-invalid": Case(second_argument_bad, "spec.direction", ("up",)),
    "one-sweep-defined-twice": Case(one_sweep_defined_twice, "sweep_name", ("also defined", "first.yaml")),
}


def check(case: Case, config: Path, code: int, stdout: str, stderr: str, before: dict, after: dict) -> None:
    output = stdout + stderr
    assert "Traceback" not in output, output
    assert code == 2, f"exit code {code}, expected 2; output:\n{output}"
    message = the_message(stdout, stderr)
    assert str(config) in message, f"the message does not name the file {config}: {message}"
    if case.key is not None:
        assert f"{config}: {case.key}" in message, f"the message does not name {case.key!r}: {message}"
    for fragment in case.also:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in the message: {message}"
    assert_nothing_written(before, after)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """In-process runs see what a subprocess started in tmp_path would see."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("name", list(CASES))
def test_bad_config_exits_2_names_file_and_key_writes_nothing(name, in_tmp):
    case = CASES[name]
    args, config = case.make(in_tmp)
    before = snapshot(in_tmp)
    result = CliRunner().invoke(main, ["sweep", *args], catch_exceptions=True)
    after = snapshot(in_tmp)
    # Only SystemExit may leave the CLI: anything else is an exception the user would see raw.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exc_info)
    check(case, config, result.exit_code, result.stdout, result.stderr, before, after)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_config_refused_by_status_and_delete_too(name, in_tmp):
    """`status` and `delete --yes` read the same configs: they must refuse them the same way."""
    case = CASES[name]
    args, config = case.make(in_tmp)
    before = snapshot(in_tmp)
    for command in (["status"], ["delete", "--yes"]):
        result = CliRunner().invoke(main, [*command, *args], catch_exceptions=True)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exc_info)
        check(case, config, result.exit_code, result.stdout, result.stderr, before, snapshot(in_tmp))


@pytest.mark.parametrize("name", ["misspelt-parameters", "yaml-syntax-error", "second-in-comma-list-invalid"])
def test_bad_config_in_a_real_process(name, tmp_path):
    case = CASES[name]
    args, config = case.make(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli("sweep", *args, cwd=tmp_path, timeout=120)
    check(case, config, result.returncode, result.stdout, result.stderr, before, snapshot(tmp_path))


# ---- unreachable storage servers ----------------------------------------------------------------
# The contract has no code of its own for an unreachable storage; the product uses 2 (the storages are
# part of the configuration, and like a config error nothing has been written). We expect 2, with
# one message naming the storage, said to be unreachable, in reasonable time, nothing written.

UNREACHABLE_SECONDS = 60  # a generous bound: the product's own retries with backoff take ~16 s


def run_unreachable(tmp_path: Path, env: dict | None = None, **keys) -> tuple[Path, str, dict, dict]:
    config = write_config(tmp_path, **keys)
    before = snapshot(tmp_path)
    try:
        result = run_cli("sweep", config, cwd=tmp_path, timeout=UNREACHABLE_SECONDS, env=env)
    except subprocess.TimeoutExpired as exc:  # run_cli's subprocess.run killed the agent
        pytest.fail(
            f"no answer within {UNREACHABLE_SECONDS} s for an unreachable storage "
            f"(output so far: {exc.stderr!r})"
        )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, f"exit code {result.returncode}; output:\n{output}"
    return config, the_message(result.stdout, result.stderr), before, snapshot(tmp_path)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/x",
        pytest.param("postgresql+psycopg2://postgres@127.0.0.1:1/x", marks=pytest.mark.extended),
    ],
)
def test_unreachable_optuna_server(url, tmp_path):
    config, message, before, after = run_unreachable(tmp_path, optuna_storage=url)
    assert "optuna storage" in message.lower() and url in message, message
    assert f"{config}: optuna_storage: " in message, "the file and the key that named it"
    assert any(word in message.lower() for word in ("connect", "refused", "unreachable", "reach")), (
        f"the message does not say the server cannot be reached: {message}"
    )
    assert_nothing_written(before, after)


def test_unreachable_mlflow_server(tmp_path):
    """As a user gets it: MLflow's own HTTP retries at their defaults."""
    config, message, before, after = run_unreachable(tmp_path, mlflow_storage="http://127.0.0.1:1")
    assert "mlflow storage" in message.lower() and "http://127.0.0.1:1" in message, message
    assert f"{config}: mlflow_storage: " in message, "the file and the key that named it"
    assert_nothing_written(before, after)


def test_unreachable_mlflow_server_writes_nothing_to_the_optuna_storage(tmp_path):
    """MLflow's HTTP retries off, so only the product's behaviour is timed: still nothing written."""
    config, message, before, after = run_unreachable(
        tmp_path, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}, mlflow_storage="http://127.0.0.1:1"
    )
    assert "mlflow storage" in message.lower() and "http://127.0.0.1:1" in message, message
    assert_nothing_written(before, after)


def test_a_later_config_refused_stops_the_agent_before_the_first_sweep_runs(tmp_path):
    """Several configs: a later one that changes a sweep that has learned something exits 2
    before the first sweep starts (the first writes nothing), not after it ran."""
    finished = write_config(tmp_path, "b.yaml", sweep_name="b", parameters={"x": [1], "y": [10]})
    assert run_cli("sweep", finished, cwd=tmp_path).returncode == 0
    finished.write_text(finished.read_text().replace("- 1\n", "- 1\n  - 2\n", 1))
    first = write_config(tmp_path, "a.yaml", sweep_name="a", parameters={"x": [1], "y": [10]})
    result = run_cli("sweep", first, finished, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "b.yaml" in output and "Traceback" not in output, output
    assert "exp/a" not in output  # the first sweep never opened: no study, no run
    url = f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}"
    studies = [s.study_name for s in optuna.get_all_study_summaries(url)]
    assert studies == ["exp/b", "exp/b#claims", "exp/b#close"]
    runs = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(["0", "1"])
    assert {r.data.tags.get("sweeper.sweep") for r in runs} == {"exp/b"}


def test_databricks_without_credentials_exits_2_writing_nothing(tmp_path):
    """`MLFLOW_TRACKING_URI=databricks` is a tracking store the sweep accepts; with no Databricks
    credentials here, the agent says so before either storage is written."""
    env = {"MLFLOW_TRACKING_URI": "databricks", "HOME": str(tmp_path), "DATABRICKS_HOST": ""}
    config, message, before, after = run_unreachable(tmp_path, env=env, mlflow_storage=None)
    assert "MLflow storage databricks" in message and "unknown" not in message, message
    assert "MLFLOW_TRACKING_URI: cannot reach the MLflow storage" in message, "where the store was named"
    assert_nothing_written(before, after)


def test_a_later_config_whose_parent_is_in_another_store_stops_the_agent_first(tmp_path):
    finished = write_config(tmp_path, "b.yaml", sweep_name="b", parameters={"x": [1], "y": [10]})
    assert run_cli("sweep", finished, cwd=tmp_path).returncode == 0
    finished.write_text(finished.read_text().replace("sqlite:///mlflow.db", "sqlite:///other.db"))
    first = write_config(tmp_path, "a.yaml", sweep_name="a", parameters={"x": [1], "y": [10]})
    result = run_cli("sweep", first, finished, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "which is not in this MLflow storage" in output, output
    assert "exp/a" not in output and not (tmp_path / "other.db").exists()


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_an_output_dir_that_cannot_be_made_is_exit_2_before_either_storage(where, in_tmp):
    """Trial logs and lock files go to `output_dir`: one that cannot be made stops the agent before
    the study and the parent run exist (it failed with exit 1 after both were written)."""
    (in_tmp / "taken").write_text("a file in the way\n")
    folder = "taken" if where == "a-file" else "taken/sweeps"
    config = write_config(
        in_tmp,
        output_dir=folder,
        optuna_storage=f"sqlite:///{in_tmp / 'optuna.db'}",
        mlflow_storage=f"sqlite:///{in_tmp / 'mlflow.db'}",
    )
    before = snapshot(in_tmp)
    result = CliRunner().invoke(main, ["sweep", str(config)], catch_exceptions=True)
    case = Case(keys(), "output_dir", ("taken",))
    check(case, config, result.exit_code, result.stdout, result.stderr, before, snapshot(in_tmp))
