"""Real projects and plain scripts, as a new user sweeps them: checks before anything is written,
what the trials are given and record, the console on failures, and the sweep's MLflow storage.

Everything goes through the real CLI with real stores and real trial processes; the project is
tests/project_real (python_env.yaml, typed parameters, a `path` parameter with a relative default,
an argparse script), the plain script tests/project_real/flags.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import cli_env, mlflow_runs, optuna_trials, run_cli, start_cli
from mlflow.tracking import MlflowClient

PROJECT_REAL = Path(__file__).resolve().parent / "project_real"
FLAGS = PROJECT_REAL / "flags.py"


def config_file(directory: Path, template: Path | None = None, **keys) -> Path:
    """A config of an `entry_point` sweep of tests/project_real (keys replace; None removes), with
    the MLflow store in mlflow.db next to it (copied from `template` when given)."""
    data = {
        "experiment": "exp",
        "sweep_name": "s1",
        "entry_point": "main",
        "project": str(PROJECT_REAL),
        "parameters": {"alpha": [0.1]},
        "mlflow_storage": "sqlite:///mlflow.db",
        "spec": {"direction": "minimize", "metric": "rmse"},
    }
    for key, value in keys.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    if "command" in data:
        for key in ("entry_point", "project"):
            data.pop(key, None)
    directory.mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copyfile(template, directory / "mlflow.db")
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def output(result) -> str:
    return result.stdout + result.stderr


def assert_refused_with_nothing_written(result, directory: Path, *fragments: str) -> None:
    text = output(result)
    assert result.returncode == 2, text
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text
    assert not (directory / "sweeps").exists(), "the Optuna storage was created"
    assert not (directory / "mlflow.db").exists(), "the MLflow storage was created"


def trial_runs(uri: str, deleted: bool = False) -> list:
    return [r for r in mlflow_runs(uri, deleted=deleted) if r.data.tags.get("sweeper.role") == "trial"]


def parent_run(uri: str):
    (parent,) = [r for r in mlflow_runs(uri) if r.data.tags.get("sweeper.role") == "parent"]
    return parent


def optuna_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'sweeps' / 'optuna.db'}"


def failing_script(directory: Path) -> Path:
    """A script that fails (with a recognisable last line) until the file `fixed` exists."""
    script = directory / "flaky.py"
    script.write_text(
        "import os, sys\n"
        "if not os.path.exists(os.path.join(os.path.dirname(__file__), 'fixed')):\n"
        "    print('line before the cause')\n"
        "    sys.exit('CAUSE: the data set is missing')\n"
        "import mlflow\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('score', 1.0)\n"
    )
    return script


def failing_sweep(tmp_path: Path, mlflow_template, points: list, *, max_retries: int, fail_fast: int) -> Path:
    """A sweep over x in `points` of `failing_script`, which fails until the file `fixed` exists."""
    return config_file(
        tmp_path,
        mlflow_template,
        command=f"python {failing_script(tmp_path)}",
        parameters={"x": points},
        max_retries=max_retries,
        fail_fast=fail_fast,
        spec={"direction": "maximize", "metric": "score"},
    )


# ---- 1-3: the project, the entry point and its parameters are checked first ---------------------


def test_misspelt_entry_point_exits_2_with_a_suggestion_and_writes_nothing(tmp_path):
    config = config_file(tmp_path, entry_point="mian")
    result = run_cli("sweep", config, cwd=tmp_path)
    assert_refused_with_nothing_written(
        result, tmp_path, "entry_point: no entry point 'mian'", "(did you mean 'main'?)"
    )


def test_missing_env_manager_tool_exits_2_and_writes_nothing(tmp_path):
    # uv installs the test environment, so it is on PATH: the agent gets a PATH without it.
    folders = os.environ["PATH"].split(os.pathsep)
    path = os.pathsep.join(d for d in folders if d and not (Path(d) / "uv").exists())
    config = config_file(tmp_path, env_manager="uv")
    result = run_cli("sweep", config, cwd=tmp_path, env={"PATH": path})
    assert_refused_with_nothing_written(result, tmp_path, "env_manager: 'uv' needs 'uv'", "not on PATH")


def test_mistyped_local_project_path_is_named_not_a_git_error(tmp_path):
    config = config_file(tmp_path, project="./projetc")
    result = run_cli("sweep", config, cwd=tmp_path)
    missing = tmp_path / "projetc"
    assert_refused_with_nothing_written(result, tmp_path, f"project: no such directory: {missing}")
    assert "git" not in output(result)


def test_undeclared_parameter_is_refused_with_the_nearest_declared_name(tmp_path):
    config = config_file(tmp_path, parameters={"alpah": [0.1, 0.2]})
    result = run_cli("sweep", config, cwd=tmp_path)
    assert_refused_with_nothing_written(
        result,
        tmp_path,
        "parameters.alpah: entry point 'main' declares no parameter 'alpah'",
        "did you mean 'alpha'?",
    )


def test_docker_env_project_exits_2_with_a_clear_message(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PROJECT_REAL, project)
    mlproject = project / "MLproject"
    docker = mlproject.read_text().replace("python_env: python_env.yaml", "docker_env:\n  image: x")
    mlproject.write_text(docker)
    config = config_file(tmp_path / "conf", project=str(project))
    result = run_cli("sweep", config, cwd=tmp_path)
    message = "docker_env projects are not supported yet"
    assert_refused_with_nothing_written(result, tmp_path / "conf", message)


# ---- 4, 5 and python_env with env_manager local: one real sweep of the project --------------------


@pytest.fixture(scope="module")
def project_sweep(tmp_path_factory, mlflow_template):
    """A sweep of tests/project_real run from an unrelated directory: the `data` path parameter
    keeps its relative MLproject default, the python_env is ignored (env_manager local)."""
    root = tmp_path_factory.mktemp("project_sweep")
    config = config_file(root / "conf", mlflow_template, parameters={"alpha": [0.1, 0.2], "max_iter": 50})
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("sweep", config, cwd=elsewhere)
    return result, f"sqlite:///{root / 'conf' / 'mlflow.db'}"


def test_path_parameter_default_resolves_against_the_project_from_another_directory(project_sweep):
    result, uri = project_sweep
    assert result.returncode == 0, output(result)
    runs = trial_runs(uri)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert all("rmse" in r.data.metrics for r in runs)  # train.py read data/train.csv of the project
    assert parent_run(uri).info.status == "FINISHED"


def test_trial_runs_carry_every_parameter_of_the_entry_point(project_sweep):
    result, uri = project_sweep
    assert result.returncode == 0, output(result)
    for run in trial_runs(uri):
        params = run.data.params
        assert params["alpha"] in ("0.1", "0.2")
        assert params["max_iter"] == "50"  # fixed by the config
        # the MLproject defaults, as `mlflow run` logs them (the path as written)
        assert params["l1_ratio"] == "0.1" and params["solver"] == "cd" and params["data"] == "data/train.csv"


def test_missing_path_value_is_refused_against_the_project_directory(tmp_path):
    config = config_file(tmp_path, parameters={"alpha": [0.1], "data": "data/nope.csv"})
    result = run_cli("sweep", config, cwd=tmp_path)
    assert_refused_with_nothing_written(
        result, tmp_path, f"no such file or directory: {PROJECT_REAL / 'data' / 'nope.csv'}"
    )


# ---- 6: command placeholders, arg_style, the log header and tail -------------------------------


def test_command_placeholders_and_arg_style_sweep_an_argparse_script(tmp_path, mlflow_template):
    config = config_file(
        tmp_path,
        mlflow_template,
        command=f"python {FLAGS} --lr={{lr}} --out out-{{lr}}.txt",
        arg_style="--name value",
        parameters={"lr": [0.5], "epochs": 3},
        spec={"direction": "maximize", "metric": "score"},
    )
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    (run,) = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.data.metrics["score"] == 1.5  # lr * epochs: both arrived as flags
    assert (tmp_path / "out-0.5.txt").read_text() == "0.5"
    log = (tmp_path / "sweeps" / "logs" / "exp_s1" / "trial-0.log").read_text().splitlines()
    assert log[0] == f"# command: python {FLAGS} --lr=0.5 --out out-0.5.txt --epochs 3"
    assert log[1] == f"# working directory: {tmp_path}"


def test_placeholder_naming_no_parameter_exits_2_and_writes_nothing(tmp_path):
    config = config_file(tmp_path, command=f"python {FLAGS} --lr {{lrr}}", parameters={"lr": [0.1]})
    result = run_cli("sweep", config, cwd=tmp_path)
    assert_refused_with_nothing_written(
        result, tmp_path, "command: placeholder '{lrr}' names no parameter (did you mean '{lr}'?)"
    )


def test_a_failing_trial_shows_its_log_tail_once_per_point(tmp_path, mlflow_template):
    config = failing_sweep(tmp_path, mlflow_template, [1], max_retries=1, fail_fast=0)
    result = run_cli("sweep", config, cwd=tmp_path)
    text = output(result)
    assert result.returncode == 1, text
    assert text.count("failed (run") == 2  # the first attempt and its retry
    assert text.count("CAUSE: the data set is missing") == 1, text  # the tail, once for the point
    assert "line before the cause" in text


# ---- fail_fast ----------------------------------------------------------------------------------


@pytest.mark.extended  # fail_fast and the run after the fix: the test below
def test_fail_fast_stops_the_sweep_early_and_it_resumes_once_fixed(tmp_path, mlflow_template):
    config = failing_sweep(tmp_path, mlflow_template, [1, 2, 3, 4], max_retries=1, fail_fast=2)
    result = run_cli("sweep", config, "--quiet", cwd=tmp_path)  # which still says why it stopped
    text = output(result)
    assert result.returncode == 1, text
    assert "the first 2 trials all failed: the run failed (exit code 1) (fail_fast)" in text
    assert "fix the cause and run again to resume, or set fail_fast: 0" in text
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert len(trial_runs(uri, deleted=True)) == 2  # then no trial was started
    assert parent_run(uri).info.status == "RUNNING"

    (tmp_path / "fixed").write_text("")
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    trials = optuna_trials(optuna_url(tmp_path))
    assert sorted(t.params["x"] for t in trials if t.state.name == "COMPLETE") == [1, 2, 3, 4]
    assert parent_run(uri).info.status == "FINISHED"


def stored_config(uri: str, run_id: str, name: str) -> str:
    """The config a parent run stores as its `sweep/` artifact."""
    import mlflow

    return mlflow.artifacts.load_text(f"{parent_artifacts(uri, run_id)}/sweep/{name}")


def parent_artifacts(uri: str, run_id: str) -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri).get_run(run_id).info.artifact_uri


def test_after_fail_fast_on_a_wrong_metric_the_fixed_config_starts_the_sweep_over(tmp_path, mlflow_template):
    """Nothing completed, so the objective may change: the sweep starts over under the same parent,
    the earlier attempts' runs soft-deleted; `status` counted the failed points meanwhile. Once a
    trial has completed, a changed objective is refused again."""
    (tmp_path / "fixed").write_text("")
    script = failing_script(tmp_path)  # logs 'score'
    keys = dict(command=f"python {script}", parameters={"x": [1, 2, 3]}, max_retries=1, fail_fast=2)
    config = config_file(tmp_path, mlflow_template, spec={"direction": "maximize", "metric": "scor"}, **keys)
    result = run_cli("sweep", config, cwd=tmp_path)
    text = output(result)
    assert result.returncode == 1, text
    assert "(fail_fast)" in text and "the config's parameters and objective may still change" in text
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old_runs = {r.info.run_id for r in trial_runs(uri, deleted=True)}  # a retry's replaced run is deleted
    parent = parent_run(uri).info.run_id
    assert len(old_runs) == 2

    status = run_cli("status", config, cwd=tmp_path)
    assert status.returncode == 0, output(status)
    assert "failed (will be retried on resume)" in status.stdout, status.stdout
    data = json.loads(run_cli("status", config, "--json", cwd=tmp_path).stdout)["sweeps"][0]
    assert data["failed_to_retry"] >= 1 and data["done"] == 0 and data["attempts"] == 2

    config = config_file(tmp_path, spec={"direction": "maximize", "metric": "score"}, **keys)
    with config.open("a") as out:  # a password written in the file: the stored config masks it
        out.write("# earlier: optuna_storage: postgresql://me:LitPw-1234@db.example/optuna\n")
    result = run_cli("sweep", config, cwd=tmp_path)
    text = output(result)
    assert result.returncode == 0, text
    assert "starts over under the changed config" in text and "2 earlier attempt runs deleted" in text
    stored = stored_config(uri, parent, config.name)
    assert "metric: score" in stored and "LitPw-1234" not in stored and "postgresql://me:***@" in stored
    assert text.count("starts over") == 1 and "started over" not in text  # one line says so
    assert parent_run(uri).info.run_id == parent and parent_run(uri).info.status == "FINISHED"
    assert parent_run(uri).data.tags["sweeper.started_over"] == "1"
    live = {r.info.run_id for r in trial_runs(uri)}
    assert len(live) == 3 and not live & old_runs
    deleted = {r.info.run_id for r in trial_runs(uri, deleted=True)} - live
    assert deleted == old_runs
    trials = optuna_trials(optuna_url(tmp_path))
    assert sorted(t.params["x"] for t in trials) == [1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)

    config = config_file(tmp_path, spec={"direction": "minimize", "metric": "score"}, **keys)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 2, output(result)
    assert "already exists" in output(result)


@pytest.mark.extended
def test_fail_fast_keeps_the_attempts_of_a_point_whose_last_one_was_still_running(tmp_path, mlflow_template):
    """fail_fast fires while another point's last attempt still runs: when that one fails too,
    its point is queued again like the others, so the fixed sweep resumes it (not failed for good)."""
    script = tmp_path / "slow_fail.py"
    script.write_text("import sys, time\nif sys.argv[1] == 'x=2':\n    time.sleep(3)\nsys.exit('CAUSE')\n")
    config = config_file(
        tmp_path,
        mlflow_template,
        command=f"python {script}",
        parameters={"x": [1, 2]},
        max_retries=0,
        fail_fast=1,
        spec={"direction": "maximize", "metric": "score"},
    )
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path)
    assert result.returncode == 1 and "(fail_fast)" in output(result), output(result)
    # x=1's line said it runs again if fail_fast stops the sweep: the stop says it does
    assert "On resume, every point that failed so far runs again" in output(result)
    trials = optuna_trials(optuna_url(tmp_path))
    waiting = sorted(t.params["x"] for t in trials if t.state.name == "WAITING")
    assert waiting == [1, 2], [(t.number, t.state.name, t.params) for t in trials]


@pytest.mark.extended
def test_fail_fast_zero_runs_every_attempt(tmp_path, mlflow_template):
    config = failing_sweep(tmp_path, mlflow_template, [1, 2, 3], max_retries=0, fail_fast=0)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 1, output(result)
    assert "(fail_fast)" not in output(result)
    assert len(trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", deleted=True)) == 3


# ---- 7: the console script by its full path, its environment not activated ---------------------


@pytest.mark.extended
def test_console_script_by_full_path_gives_trials_the_agents_python(tmp_path, mlflow_template):
    config = config_file(
        tmp_path,
        mlflow_template,
        command=f"python3 {FLAGS} --lr {{lr}}",  # flags.py imports mlflow under a trial's run
        parameters={"lr": [0.5]},
        spec={"direction": "maximize", "metric": "score"},
    )
    env = {k: v for k, v in cli_env().items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env["PATH"] = "/usr/bin:/bin"  # a shell whose python3 has no MLflow
    script = Path(sys.executable).parent / "mlflow-sweeper"
    result = subprocess.run(
        [str(script), "sweep", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, output(result)
    (run,) = trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.data.metrics["score"] == 0.5


# ---- 8: the recorded MLflow storage --------------------------------------------------------------


@pytest.mark.extended
def test_recorded_mlflow_storage_is_used_wherever_agents_and_status_start(tmp_path):
    conf = tmp_path / "conf"
    config = config_file(
        conf,
        mlflow_storage=None,  # MLflow's default: sqlite:///mlflow.db in the working directory
        command=f"python {FLAGS} --lr {{lr}}",
        parameters={"lr": [0.5, 1.0]},
        spec={"direction": "maximize", "metric": "score"},
    )
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    result = run_cli("sweep", config, "--count", "1", cwd=first)
    assert result.returncode == 0, output(result)
    study = optuna.load_study(study_name="exp/s1", storage=optuna_url(conf))
    assert study.user_attrs["mlflow_tracking_uri"] == f"sqlite:///{first / 'mlflow.db'}"

    result = run_cli("sweep", config, cwd=second)
    assert result.returncode == 0, output(result)
    assert not (second / "mlflow.db").exists()
    uri = f"sqlite:///{first / 'mlflow.db'}"
    assert len(trial_runs(uri)) == 2
    parent = parent_run(uri)
    assert parent.info.status == "FINISHED"

    result = run_cli("status", config, cwd=second)
    assert result.returncode == 0, output(result)
    assert f"parent run: {parent.info.run_id} (FINISHED)" in result.stdout
    assert not (second / "mlflow.db").exists()


def test_a_store_named_other_than_the_recorded_one_is_warned_of(tmp_path):
    """Run from elsewhere with MLFLOW_TRACKING_URI naming another store, `status` and `delete` find
    none of the sweep's runs: they say where its agents recorded them instead of finding 0, and
    `delete` deletes nothing (exit 2). (A store that holds them under another name, a project
    moved with its stores, is not warned of.)"""
    conf = tmp_path / "conf"
    config = config_file(
        conf,
        mlflow_storage=None,
        command=f"python {FLAGS} --lr {{lr}}",
        parameters={"lr": [0.5]},
        spec={"direction": "maximize", "metric": "score"},
    )
    first = tmp_path / "first"
    first.mkdir()
    assert run_cli("sweep", config, cwd=first).returncode == 0
    recorded = f"sqlite:///{first / 'mlflow.db'}"
    with sqlite3.connect(first / "mlflow.db") as source, sqlite3.connect(tmp_path / "moved.db") as moved:
        source.backup(moved)  # the same runs, under another name
    result = run_cli(
        "status", config, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'moved.db'}"}
    )
    assert result.returncode == 0 and "recorded its runs" not in output(result), output(result)
    other = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'other.db'}"}
    result = run_cli("status", config, cwd=tmp_path, env=other)
    assert result.returncode == 0, output(result)
    assert f"its agents recorded its runs in {recorded}; MLFLOW_TRACKING_URI names" in output(result)
    # delete refuses rather than delete the study alone: a sweep run again would get a second parent
    result = run_cli("delete", "--yes", config, cwd=tmp_path, env=other)
    assert result.returncode == 2, output(result)
    assert f"its agents recorded its runs in {recorded}; MLFLOW_TRACKING_URI names" in output(result)
    assert "nothing deleted" in output(result) and "Traceback" not in output(result)
    assert len(trial_runs(recorded)) == 1
    assert "not started" not in output(run_cli("status", config, cwd=tmp_path))  # the study is whole
    result = run_cli("delete", "--yes", config, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": recorded})
    said = output(result)
    assert result.returncode == 0 and "its Optuna study and 2 MLflow run(s) deleted" in said, said


def test_a_sweep_pointed_at_a_store_without_its_parent_is_refused_writing_nothing(tmp_path):
    """A sweep whose parent run is in one MLflow store, resumed with `mlflow_storage` naming
    another: exit 2 before that store is written, whether it does not exist yet (no file made)
    or holds other runs (no experiment made in it)."""
    config = config_file(
        tmp_path,
        mlflow_storage="sqlite:///first.db",
        command=f"python {FLAGS} --lr {{lr}}",
        parameters={"lr": [0.5]},
        spec={"direction": "maximize", "metric": "score"},
    )
    assert run_cli("sweep", config, cwd=tmp_path).returncode == 0
    text = config.read_text()
    config.write_text(text.replace("sqlite:///first.db", "sqlite:///other.db"))
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 2 and "which is not in this MLflow storage" in output(result), output(result)
    assert not (tmp_path / "other.db").exists()

    MlflowClient(f"sqlite:///{tmp_path / 'other.db'}").create_experiment("someone-else")
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 2 and "which is not in this MLflow storage" in output(result), output(result)
    names = [e.name for e in MlflowClient(f"sqlite:///{tmp_path / 'other.db'}").search_experiments()]
    assert sorted(names) == ["Default", "someone-else"]


def test_agents_started_together_from_different_directories_agree_on_one_store(tmp_path):
    """No store named: three agents start at once on a fresh sweep, each in a directory of its
    own. The creator records its default store before anything else and the others wait for it:
    all finish, each point runs once, and only one MLflow store exists."""
    conf = tmp_path / "conf"
    config = config_file(
        conf,
        mlflow_storage=None,
        command=f"python {FLAGS} --lr {{lr}}",
        parameters={"lr": [0.25, 0.5, 0.75, 1.0]},
        spec={"direction": "maximize", "metric": "score"},
    )
    directories = [tmp_path / f"agent{i}" for i in range(3)]
    agents = []
    for directory in directories:
        directory.mkdir()
        agents.append(start_cli("sweep", config, cwd=directory))
    outputs = [agent.communicate(timeout=240)[0] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0, 0], "\n---\n".join(outputs)
    stores = [d for d in directories if (d / "mlflow.db").exists()]
    assert len(stores) == 1, (stores, outputs)
    uri = f"sqlite:///{stores[0] / 'mlflow.db'}"
    runs = trial_runs(uri)
    assert sorted(float(r.data.params["lr"]) for r in runs) == [0.25, 0.5, 0.75, 1.0]
    assert parent_run(uri).info.status == "FINISHED"


def test_a_named_store_is_recorded_in_the_step_that_creates_the_sweep(tmp_path, mlflow_template):
    """An agent with no store named that joins while the creator (store named) is still making
    the parent run must find the store recorded, not fall back to a default of its own: the
    creator writes it with the study, before the config path, not after the parent run."""
    import sqlite3

    from mlflow_sweeper.coordination.names import CONFIG_ATTR

    conf = tmp_path / "conf"
    config = config_file(
        conf, mlflow_template, command=f"python {FLAGS} --lr {{lr}}", parameters={"lr": [0.5]}, spec=None
    )
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    conn = sqlite3.connect(conf / "sweeps" / "optuna.db")
    try:
        keys = [
            key
            for (key,) in conn.execute(
                "SELECT a.key FROM study_user_attributes a JOIN studies s ON s.study_id = a.study_id "
                "WHERE s.study_name = 'exp/s1' ORDER BY a.study_user_attribute_id"
            )
        ]
    finally:
        conn.close()
    assert keys.index("mlflow_tracking_uri") < keys.index(CONFIG_ATTR), keys
    study = optuna.load_study(study_name="exp/s1", storage=optuna_url(conf))
    assert study.user_attrs["mlflow_tracking_uri"] == f"sqlite:///{conf / 'mlflow.db'}"


def test_recorded_storage_never_holds_a_password():
    from mlflow_sweeper.tracking_store import fit_to_record

    assert fit_to_record("postgresql://me:secret@db:5432/m") == "postgresql://me@db:5432/m"
    assert fit_to_record("sqlite:///rel.db") == f"sqlite:///{os.path.abspath('rel.db')}"
    for remote in ("databricks", "databricks-uc", "databricks://profile", "https://mlflow.example.com"):
        assert fit_to_record(remote) == remote  # recorded as given, never as a local path


# ---- 9: --retry-failed ----------------------------------------------------------------------------


def test_retry_failed_reruns_points_that_failed_for_good_under_the_same_parent(tmp_path, mlflow_template):
    config = failing_sweep(tmp_path, mlflow_template, [1, 2], max_retries=0, fail_fast=0)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 1, output(result)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = parent_run(uri).info.run_id
    assert parent_run(uri).info.status == "FINISHED"

    (tmp_path / "fixed").write_text("")
    result = run_cli("sweep", config, cwd=tmp_path)  # without the flag: nothing to run
    assert result.returncode == 1 and "already complete" in output(result), output(result)
    result = run_cli("sweep", config, "--retry-failed", cwd=tmp_path)
    text = output(result)
    assert result.returncode == 0, text
    assert "retrying 2 failed point(s)" in text
    parent = parent_run(uri)
    assert parent.info.run_id == parent_id and parent.info.status == "FINISHED"
    trials = optuna_trials(optuna_url(tmp_path))
    assert sorted(t.params["x"] for t in trials if t.state.name == "COMPLETE") == [1, 2]
    finished = [r for r in trial_runs(uri) if r.info.status == "FINISHED"]
    assert len(finished) == 2


def test_retry_failed_gives_a_fresh_set_of_attempts_numbered_on(tmp_path, mlflow_template):
    """Each run of a point has its own attempt number (SWEEPER_ATTEMPT, tag `sweeper.attempt`),
    and the fresh set of attempts has the whole retry budget."""
    config = failing_sweep(tmp_path, mlflow_template, [1], max_retries=1, fail_fast=0)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def attempts() -> list[str]:
        return sorted(r.data.tags["sweeper.attempt"] for r in trial_runs(uri, deleted=True))

    assert run_cli("sweep", config, cwd=tmp_path).returncode == 1
    assert attempts() == ["1", "2"]
    result = run_cli("sweep", config, "--retry-failed", cwd=tmp_path)  # still broken: two more
    assert result.returncode == 1, output(result)
    assert attempts() == ["1", "2", "3", "4"]
    (tmp_path / "fixed").write_text("")
    result = run_cli("sweep", config, "--retry-failed", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "attempt 5" in output(result) and attempts() == ["1", "2", "3", "4", "5"]
    finished = [r for r in trial_runs(uri) if r.info.status == "FINISHED"]
    assert [r.data.tags["sweeper.attempt"] for r in finished] == ["5"]


# ---- 10: runs of `mlflow run -e sweep|delete|status` ----------------------------------------------


def command_run(uri: str, experiment: str | None) -> str:
    """The run `mlflow run` would start for an entry point of this repository."""
    client = MlflowClient(tracking_uri=uri)
    experiment_id = "0"
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    return client.create_run(experiment_id).info.run_id


@pytest.mark.parametrize(
    ("store", "experiment", "hint"),
    [
        pytest.param(  # `mlflow run` without --experiment-name: Default
            "mlflow.db", None, "pass --experiment-name 'exp' to `mlflow run` to nest it",
            marks=pytest.mark.extended, id="other-experiment",
        ),
        # `mlflow run` in another store: opening the sweep's (MLflow's `set_tracking_uri`)
        # must not lose where the agent's run is
        pytest.param(
            "runs.db", "exp", "is in another MLflow store than the sweep; it is tagged", id="other-store"
        ),
    ],
)  # fmt: skip
def test_an_agent_run_that_cannot_be_nested_is_tagged_where_it_is(
    tmp_path, mlflow_template, store, experiment, hint
):
    config = config_file(
        tmp_path,
        mlflow_template,
        command=f"python {FLAGS} --lr {{lr}}",
        parameters={"lr": [0.5]},
        spec={"direction": "maximize", "metric": "score"},
    )
    uri = f"sqlite:///{tmp_path / store}"
    agent_run = command_run(uri, experiment)
    env = {"MLFLOW_RUN_ID": agent_run, "MLFLOW_TRACKING_URI": uri}
    result = run_cli("sweep", config, cwd=tmp_path, env=env)
    assert result.returncode == 0, output(result)
    assert f"agent run {agent_run} " in output(result) and hint in output(result), output(result)
    tags = MlflowClient(tracking_uri=uri).get_run(agent_run).data.tags
    assert tags["sweeper.role"] == "agent" and tags["sweeper.sweep"] == "exp/s1"
    assert tags["sweeper.parent_run_id"] == parent_run(f"sqlite:///{tmp_path / 'mlflow.db'}").info.run_id
    assert "mlflow.parentRunId" not in tags


def test_mlflow_run_of_this_project_finds_a_config_relative_to_where_it_was_typed(tmp_path, mlflow_template):
    """`mlflow run <sweeper> -e status -P config=sweep.yaml`, typed in the user's own folder: MLflow
    runs the entry point in the sweeper's folder, yet the relative path means the user's."""
    config = config_file(
        tmp_path, mlflow_template, command=f"python {FLAGS} --lr {{lr}}", parameters={"lr": [0.5]}
    )
    repo = Path(__file__).resolve().parent.parent
    env = cli_env({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'runs.db'}"})
    command = [sys.executable, "-m", "mlflow", "run", str(repo), "-e", "status", "--env-manager", "local"]
    result = subprocess.run(
        [*command, "-P", f"config={config.name}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    assert "exp/s1" in result.stdout and "not started" in result.stdout, output(result)


def test_an_agent_whose_mlflow_run_got_sigterm_stops_as_on_sigterm(tmp_path, mlflow_template):
    """SIGTERM to `mlflow run -e sweep` ends it without a word to the agent it started: the agent
    sees it gone and stops as on SIGTERM (its trial KILLED, the parent left RUNNING to resume),
    and ends its own run, which `mlflow run` would have ended."""
    import signal
    import time

    import psutil

    sleeper = f"{sys.executable} -c 'import time; time.sleep(600)'"
    config = config_file(tmp_path, mlflow_template, command=sleeper, parameters={"lr": [0.5]})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    repo = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "mlflow", "run", str(repo), "-e", "sweep", "--env-manager", "local"]
    starter = subprocess.Popen(
        [*command, "--experiment-name", "exp", "-P", f"config={config.name}"],
        cwd=tmp_path, env=cli_env({"MLFLOW_TRACKING_URI": uri}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def runs(role: str) -> list:
        return [r for r in mlflow_runs(uri) if r.data.tags.get("sweeper.role") == role]

    try:
        deadline = time.monotonic() + 180
        while not [r for r in runs("trial") if r.info.status == "RUNNING"]:
            assert starter.poll() is None and time.monotonic() < deadline, starter.communicate()[0]
            time.sleep(0.5)
        agent = psutil.Process(starter.pid).children()[0]  # the entry point: sh exec'd into python
        starter.send_signal(signal.SIGTERM)
        said = starter.communicate(timeout=60)[0]
        assert starter.returncode == -signal.SIGTERM, said  # it went at once, passing nothing on
        agent.wait(timeout=60)  # not its child: psutil cannot give the exit code
        assert "has ended: stopping as on SIGTERM" in said, said
        assert "interrupted; run the same command again to resume" in said, said
    finally:
        if starter.poll() is None:
            starter.kill()
    (trial,) = runs("trial")
    assert trial.info.status == "KILLED"
    (agent_run,) = runs("agent")
    assert agent_run.info.status == "KILLED"
    assert [r.info.status for r in runs("parent")] == ["RUNNING"]  # unfinished: the sweep resumes


def test_a_relative_config_found_nowhere_is_named_where_the_user_typed_it(tmp_path):
    """Under `mlflow run` the entry point runs in this project's folder: a missing relative config
    is reported in the folder of the process that started it (the user's), not in the project's."""
    user, project = tmp_path / "user", tmp_path / "project"
    user.mkdir(), project.mkdir()
    child = "from mlflow_sweeper.config.loading import located; print(located('nosuch.yaml'))"
    call = f"subprocess.call([sys.executable, '-c', {child!r}], cwd={str(project)!r})"
    # as `mlflow run` starts the entry point: its process names `mlflow` and `run`
    starter = f"import subprocess, sys; sys.exit({call})"
    env = cli_env({"MLFLOW_RUN_ID": "0" * 32})
    for typed_in in (user, project):  # typed in a folder of the user's, or in the project's own
        result = subprocess.run(
            [sys.executable, "-c", starter, "/usr/local/bin/mlflow", "run"],
            cwd=typed_in, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.stdout.strip() == str(typed_in / "nosuch.yaml"), output(result)


def test_a_relative_config_in_both_folders_is_the_one_where_the_user_typed_it(tmp_path):
    """The project has a file of the same name (an example's): the user's own is meant, else
    `mlflow run <sweeper> -e delete -P config=...` would delete the example's sweep."""
    user, project = tmp_path / "user", tmp_path / "project"
    user.mkdir(), project.mkdir()
    for folder in (user, project):
        (folder / "same.yaml").write_text("experiment: x\n")
    (project / "only-here.yaml").write_text("experiment: x\n")
    child = (
        "from mlflow_sweeper.config.loading import located as at; "
        "print(at('same.yaml'), at('only-here.yaml'))"
    )
    call = f"subprocess.call([sys.executable, '-c', {child!r}], cwd={str(project)!r})"
    starter = f"import subprocess, sys; sys.exit({call})"
    result = subprocess.run(
        [sys.executable, "-c", starter, "/usr/local/bin/mlflow", "run"],
        cwd=user, env=cli_env({"MLFLOW_RUN_ID": "0" * 32}), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.split() == [str(user / "same.yaml"), "only-here.yaml"], output(result)


def test_a_relative_sqlite_tracking_uri_under_mlflow_run_is_where_the_user_typed_it(tmp_path):
    """`MLFLOW_TRACKING_URI=sqlite:///mine.db mlflow run <sweeper> -e sweep`: MLflow made its own run
    in the user's folder; the sweep's runs go there too, not into the sweeper's checkout."""
    user, project = tmp_path / "user", tmp_path / "project"
    user.mkdir(), project.mkdir()
    child = "from mlflow_sweeper.tracking_store import user_tracking_uri; print(user_tracking_uri())"
    call = f"subprocess.call([sys.executable, '-c', {child!r}], cwd={str(project)!r})"
    starter = f"import subprocess, sys; sys.exit({call})"  # as `mlflow run` starts the entry point
    env = cli_env({"MLFLOW_RUN_ID": "0" * 32, "MLFLOW_TRACKING_URI": "sqlite:///mine.db?timeout=5"})
    result = subprocess.run(
        [sys.executable, "-c", starter, "/usr/local/bin/mlflow", "run"],
        cwd=user, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.strip() == f"sqlite:///{user / 'mine.db'}?timeout=5", output(result)


@pytest.mark.extended
def test_status_and_delete_runs_are_tagged_admin_and_finished(tmp_path, mlflow_template):
    config = config_file(
        tmp_path,
        mlflow_template,
        command=f"python {FLAGS} --lr {{lr}}",
        parameters={"lr": [0.5]},
        spec={"direction": "maximize", "metric": "score"},
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert run_cli("sweep", config, cwd=tmp_path).returncode == 0
    client = MlflowClient(tracking_uri=uri)
    for command, args in (("status", ()), ("delete", ("--yes",))):
        run_id = command_run(uri, None)
        env = {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": uri}
        result = run_cli(command, config, *args, cwd=tmp_path, env=env)
        assert result.returncode == 0, output(result)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"
        assert run.data.tags["sweeper.role"] == "admin"
        assert run.data.tags["sweeper.sweep"] == "exp/s1"
        assert run.data.tags["sweeper.command"] == command


# ---- 11: delete --purge leaves no empty run folders ---------------------------------------------


@pytest.mark.extended
def test_delete_purge_leaves_no_run_folders_under_mlruns(tmp_path, mlflow_template):
    config = config_file(
        tmp_path,
        mlflow_template,
        command=f"python {FLAGS} --lr {{lr}}",
        parameters={"lr": [0.5]},
        spec={"direction": "maximize", "metric": "score"},
    )
    assert run_cli("sweep", config, cwd=tmp_path).returncode == 0
    run_dirs = [p for p in (tmp_path / "mlruns").glob("*/*") if p.is_dir()]
    assert run_dirs, "the sweep stored no artifacts: this test would prove nothing"
    result = run_cli("delete", config, "--yes", "--purge", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert [p for p in (tmp_path / "mlruns").glob("*/*") if p.is_dir()] == []


# ---- a git project: fetched once per agent ------------------------------------------------------


def test_git_project_is_fetched_once_per_agent_not_per_trial(tmp_path, mlflow_template):
    repo = tmp_path / "repo"
    shutil.copytree(PROJECT_REAL, repo, ignore=shutil.ignore_patterns("__pycache__"))
    for args in (
        ("init", "-q", "-b", "main"),
        ("add", "-A"),
        ("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"),
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)
    uri = "https://git.example.invalid/team/project.git"  # served from `repo`, no network
    trace = tmp_path / "git-trace.txt"
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.file://{repo}.insteadOf",
        "GIT_CONFIG_VALUE_0": uri,
        "GIT_TRACE": str(trace),
    }
    config = config_file(tmp_path / "conf", mlflow_template, project=uri, parameters={"alpha": [0.1, 0.2]})
    result = run_cli("sweep", config, cwd=tmp_path, env=env)
    assert result.returncode == 0, output(result)
    runs = trial_runs(f"sqlite:///{tmp_path / 'conf' / 'mlflow.db'}")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    fetches = [line for line in trace.read_text().splitlines() if "built-in: git fetch" in line]
    assert len(fetches) == 1, fetches


def test_fail_fast_counts_the_first_trials_by_number_across_agents():
    from optuna.trial import TrialState, create_trial

    from mlflow_sweeper.coordination.fail_fast import fail_fast_reason

    def trial(number: int, state: TrialState, reason: str = "the run failed (exit code 1)"):
        made = create_trial(
            state=TrialState.FAIL if state == TrialState.RUNNING else state,
            value=1.0 if state == TrialState.COMPLETE else None,
            system_attrs={"sweeper:slot": number},
            user_attrs={"fail_reason": reason},
        )
        made.number, made.state = number, state
        return made

    fail, running, done = TrialState.FAIL, TrialState.RUNNING, TrialState.COMPLETE
    assert "the first 2 trials all failed" in fail_fast_reason([trial(0, fail), trial(1, fail)], 2)
    assert fail_fast_reason([trial(0, fail), trial(1, fail)], 0) is None  # off
    assert fail_fast_reason([trial(0, fail)], 2) is None  # not enough trials yet
    assert fail_fast_reason([trial(0, running), trial(1, fail), trial(2, fail)], 2) is None
    queued_retry = trial(1, TrialState.WAITING)  # not started: does not count
    assert fail_fast_reason([trial(0, fail), queued_retry, trial(2, fail)], 2) is not None
    assert fail_fast_reason([trial(0, fail), trial(1, fail), trial(2, done)], 2) is None
    cancelled = trial(1, fail, "interrupted (Ctrl-C or SIGTERM)")
    assert fail_fast_reason([trial(0, fail), cancelled], 2) is None
    # one reason shared is said once; different ones each with the trials they ended
    oom, exit3 = "infeasible: CUDA out of memory", "the run failed (exit code 3)"
    mixed = fail_fast_reason([trial(0, fail, oom), trial(1, fail, exit3), trial(2, fail, exit3)], 3)
    said = f"the first 3 trials all failed: trial 0: {oom}; trials 1, 2: {exit3} (fail_fast)"
    assert mixed.startswith(said), mixed


def test_a_fail_fast_stop_says_the_config_may_change_only_while_nothing_has_completed():
    """A trial running when fail_fast fired may complete before the agent leaves: its advice that
    the config may still change (and the sweep start over) is then revised."""
    from optuna.trial import TrialState, create_trial

    from mlflow_sweeper.coordination.fail_fast import LEARNED_SINCE_NOTE, as_it_stands, fail_fast_reason

    attrs = {"state": TrialState.FAIL, "user_attrs": {"fail_reason": "x"}}
    failed = [create_trial(**attrs, system_attrs={"sweeper:slot": slot}) for slot in range(2)]
    for number, trial in enumerate(failed):
        trial.number = number
    reason = fail_fast_reason(failed, 2)
    assert "may still change" in reason and as_it_stands(reason, failed) == reason
    completed = create_trial(state=TrialState.COMPLETE, value=0.3)
    revised = as_it_stands(reason, [*failed, completed])
    assert "may still change" not in revised and LEARNED_SINCE_NOTE in revised
    assert revised.startswith("the first 2 trials all failed: x (fail_fast)")


def test_under_mlflow_run_its_own_default_store_does_not_hide_the_recorded_one(tmp_path):
    """`mlflow run <sweeper> -e status` typed in another folder: MLflow puts its default store
    (that folder's mlflow.db) in MLFLOW_TRACKING_URI for the entry point, though the user named
    none; the sweep's recorded store is used, as for `mlflow-sweeper status` typed there. A store
    the user did name is still the one used."""
    first, elsewhere, project = tmp_path / "first", tmp_path / "elsewhere", tmp_path / "project"
    for folder in (first, elsewhere, project):
        folder.mkdir()
    config = first / "r.yaml"
    config.write_text(
        "experiment: exp\nsweep_name: r\ncommand: 'true'\nparameters: {x: [1, 2]}\n"
        "optuna_storage: 'sqlite:///optuna.db'\n"
    )
    assert run_cli("sweep", config, cwd=first).returncode == 0
    # as `mlflow run` starts the entry point: in the project's folder, from a process naming
    # `mlflow` and `run`, with MLFLOW_TRACKING_URI and MLFLOW_RUN_ID added for it
    entry_point = "\n".join([
        "import os, subprocess, sys",
        "env = {**os.environ, 'MLFLOW_TRACKING_URI': 'sqlite:///mlflow.db', 'MLFLOW_RUN_ID': '0' * 32}",
        f"argv = [sys.executable, '-m', 'mlflow_sweeper', 'status', {str(config)!r}, '--json']",
        f"sys.exit(subprocess.call(argv, cwd={str(project)!r}, env=env))",
    ])  # fmt: skip

    def parent_status(user_env: dict) -> str | None:
        env = {k: v for k, v in cli_env().items() if k != "MLFLOW_TRACKING_URI"}
        result = subprocess.run(
            [sys.executable, "-c", entry_point, "/usr/local/bin/mlflow", "run"],
            cwd=elsewhere, env={**env, **user_env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, output(result)
        (entry,) = json.loads(result.stdout)["sweeps"]
        return entry["parent_status"]

    assert parent_status({}) == "FINISHED"
    named = f"sqlite:///{elsewhere / 'mlflow.db'}"  # named by the user: its word holds
    assert parent_status({"MLFLOW_TRACKING_URI": named}) is None
