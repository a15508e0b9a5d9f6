"""The checks an agent makes before writing anything, on real MLflow projects and real files: each
failure's message, `path` parameters against the project, the full parameter set a run records,
the env manager's tool, a git project fetched once, and `python` in a trial."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from mlflow_sweeper import compat
from mlflow_sweeper.config import load_config
from mlflow_sweeper.errors import EXIT_USAGE, ConfigError, ProjectError
from mlflow_sweeper.preflight import (
    ProjectSource,
    check_absent_have_defaults,
    check_env_manager,
    check_project,
    full_parameters,
    get_entry_point,
    is_remote_uri,
    load_project,
    preflight,
    resolve_path_parameters,
    trial_env_path,
)

PROJECT_REAL = Path(__file__).resolve().parent / "project_real"
PROJECT_PLAIN = Path(__file__).resolve().parent / "project"


@pytest.fixture
def project(tmp_path) -> Path:
    """A private copy of the example-shaped project, free to break."""
    copy = tmp_path / "proj"
    shutil.copytree(PROJECT_REAL, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def config_for(directory: Path, **keys):
    """A real config file, loaded by the real loader."""
    data = {
        "experiment": "exp",
        "sweep_name": "s",
        "entry_point": "main",
        "parameters": {"alpha": [0.1, 0.2]},
        "mlflow_storage": "sqlite:///mlflow.db",
        "spec": {"direction": "minimize", "metric": "rmse"},
    }
    for key, value in keys.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def refused(config, **kwargs) -> str:
    with pytest.raises(ProjectError) as info:
        preflight(config, **kwargs)
    assert info.value.exit_code == EXIT_USAGE
    message = str(info.value)
    assert message.startswith(f"{config.path}: ")
    assert "\n" not in message
    return message


def assert_nothing_written(directory: Path) -> None:
    assert not (directory / "mlflow.db").exists()
    assert not (directory / "sweeps").exists()


# ---- the project -------------------------------------------------------------------------------


def test_a_real_project_passes(project, tmp_path):
    checked = preflight(config_for(tmp_path / "cfg", project=str(project)))
    assert checked.work_dir == str(project)
    assert checked.entry_point.name == "main"
    assert_nothing_written(tmp_path / "cfg")


def test_missing_local_project_is_named_not_a_git_error(tmp_path):
    config = config_for(tmp_path, project="./no-such-project")
    message = refused(config)
    assert f"project: no such directory: {tmp_path / 'no-such-project'}" in message
    assert "git" not in message.lower()
    assert_nothing_written(tmp_path)


def test_project_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    assert "project: not a directory" in refused(config_for(tmp_path, project="afile"))


def test_python_env_project_with_env_manager_local_is_accepted(project, tmp_path):
    config = config_for(tmp_path, project=str(project), env_manager="local")
    assert preflight(config).project.env_config_path.endswith("python_env.yaml")


def test_docker_env_project_is_refused_clearly(project, tmp_path):
    text = (
        (project / "MLproject").read_text().replace("python_env: python_env.yaml", "docker_env:\n  image: x")
    )
    (project / "MLproject").write_text(text)
    message = refused(config_for(tmp_path, project=str(project)))
    assert "docker_env projects are not supported yet" in message


def test_kubernetes_backend_needs_a_docker_env_project(project, tmp_path):
    message = refused(config_for(tmp_path, project=str(project), backend="kubernetes"))
    assert "the kubernetes backend runs docker_env projects only" in message


def test_kubernetes_backend_needs_its_python_packages(project, tmp_path, monkeypatch):
    """MLflow's kubernetes backend imports `kubernetes` and `docker`: without them the first trial
    failed to launch, after the parent run and the study were made. A bare folder of that name on
    sys.path is no package."""
    import importlib.util

    text = (
        (project / "MLproject").read_text().replace("python_env: python_env.yaml", "docker_env:\n  image: x")
    )
    (project / "MLproject").write_text(text)
    missing = [name for name in ("kubernetes", "docker") if importlib.util.find_spec(name) is None]
    if not missing:
        pytest.skip("the kubernetes backend's packages are installed here")
    folders = tmp_path / "folders"
    for name in missing:
        (folders / name).mkdir(parents=True)
    monkeypatch.syspath_prepend(str(folders))
    message = refused(config_for(tmp_path, project=str(project), backend="kubernetes"))
    assert f"needs the Python package(s) {', '.join(missing)}" in message
    assert_nothing_written(tmp_path)


def test_broken_mlproject_is_a_project_error(project, tmp_path):
    (project / "python_env.yaml").unlink()
    message = refused(config_for(tmp_path, project=str(project)))
    assert "cannot load the MLproject" in message and "python_env.yaml" in message


def test_misspelt_entry_point_gets_a_suggestion_and_the_list(project, tmp_path):
    message = refused(config_for(tmp_path, project=str(project), entry_point="mian"))
    assert "entry_point: no entry point 'mian'" in message
    assert "did you mean 'main'?" in message
    assert "its entry points are: main, needs_alpha" in message


def test_directory_without_mlproject_runs_its_scripts(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "train.py").write_text("print('hi')\n")
    checked = preflight(config_for(tmp_path / "c1", project=str(bare), entry_point="train.py"))
    assert checked.entry_point.command == "python train.py"
    # A script entry point declares nothing: it takes whatever it is given.
    assert checked.entry_point.parameters == {}

    message = refused(config_for(tmp_path / "c2", project=str(bare), entry_point="other.py"))
    assert f"no script 'other.py' in the project: {bare / 'other.py'} does not exist" in message
    message = refused(config_for(tmp_path / "c3", project=str(bare), entry_point="main"))
    assert "no MLproject entry points" in message


# ---- parameters --------------------------------------------------------------------------------


def test_undeclared_parameter_gets_a_suggestion(project, tmp_path):
    config = config_for(tmp_path, project=str(project), parameters={"alpah": [0.1], "l1_ratio": 0.5})
    message = refused(config)
    assert "parameters.alpah: entry point 'main' declares no parameter 'alpah'" in message
    assert "did you mean 'alpha'?" in message
    assert "it declares: alpha, l1_ratio, max_iter, solver, data" in message


def test_a_float_parameter_must_get_numbers(project, tmp_path):
    message = refused(config_for(tmp_path, project=str(project), parameters={"alpha": [0.1, "abc"]}))
    assert "parameters.alpha: entry point 'main' declares 'alpha' a float, and 'abc' is not" in message
    assert preflight(config_for(tmp_path, project=str(project), parameters={"alpha": ["1e-3", 2, 0.5]}))


def test_a_typed_value_from_the_environment_is_checked_as_the_trial_gets_it(project, tmp_path, monkeypatch):
    """The space holds such a value as `***`: it is checked as the trial gets it, not as it shows."""
    monkeypatch.setenv("SWEEP_ALPHA", "0.7531")
    monkeypatch.setenv("SWEEP_DATA", "data/train.csv")
    parameters = {"alpha": ["${SWEEP_ALPHA}", 0.2], "data": "${SWEEP_DATA}"}
    assert preflight(config_for(tmp_path / "a", project=str(project), parameters=parameters))
    monkeypatch.setenv("SWEEP_ALPHA", "not-a-number")
    message = refused(config_for(tmp_path / "b", project=str(project), parameters=parameters))
    assert "declares 'alpha' a float, and '***' is not a number" in message
    monkeypatch.setenv("SWEEP_ALPHA", "0.5")
    monkeypatch.setenv("SWEEP_DATA", "data/missing.csv")
    for hidden in ("data/missing.csv", "./secretdir/missing.csv", "secretdir//missing.csv"):
        monkeypatch.setenv("SWEEP_DATA", hidden)  # the path it resolves to is not shown either
        message = refused(config_for(tmp_path / "c", project=str(project), parameters=parameters))
        assert "parameters.data: path parameter 'data'" in message and "(value '***'" in message
        assert "missing.csv" not in message and "secretdir" not in message, message
    monkeypatch.setenv("SWEEP_ALPHA", "x")  # too short to mask wherever it shows; but it is a ${VAR}
    message = refused(config_for(tmp_path / "d", project=str(project), parameters=parameters))
    assert "'***' is not a number" in message and "'x'" not in message


def test_a_uri_parameter_must_get_uris(tmp_path):
    """MLflow Projects refuses a `uri` parameter without a scheme at every trial's launch."""
    project = tmp_path / "uri-project"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: u\nentry_points:\n  main:\n    parameters:\n      source: {type: uri, default: 's3://b/x'}\n"
        '    command: "python -c pass"\n'
    )
    message = refused(
        config_for(tmp_path / "a", project=str(project), parameters={"source": ["s3://b/y", "rel/p"]})
    )
    assert (
        "parameters.source: entry point 'main' declares 'source' a uri, and 'rel/p' is not a URI" in message
    )
    assert preflight(
        config_for(tmp_path / "b", project=str(project), parameters={"source": ["file:///tmp/x"]})
    )


def test_fixed_parameters_are_checked_too(project, tmp_path):
    config = config_for(tmp_path, project=str(project), parameters={"alpha": [0.1], "C": 0.1})
    assert "declares no parameter 'C'" in refused(config)


def test_required_parameter_must_be_swept_or_fixed(project, tmp_path):
    config = config_for(
        tmp_path, project=str(project), entry_point="needs_alpha", parameters={"data": ["data/train.csv"]}
    )
    message = refused(config)
    assert "entry point 'needs_alpha' requires 'alpha' (no default in its MLproject)" in message


def test_parameters_some_trials_leave_out_need_a_default(project):
    entry_point = load_project(str(project)).get_entry_point("needs_alpha")
    check_absent_have_defaults(entry_point, ["data"])  # has a default
    with pytest.raises(ProjectError, match="parameters.alpha: some trials do not set it.*add 'default:'"):
        check_absent_have_defaults(entry_point, ["alpha"])


def test_optional_parameters_in_the_full_check(project, tmp_path):
    config = config_for(tmp_path, project=str(project), entry_point="needs_alpha")
    check_project(config, optional=["data"])
    with pytest.raises(ProjectError, match="some trials do not set it"):
        check_project(config, optional=["alpha"])


def test_full_parameters_include_defaults_in_mlproject_order(project):
    entry_point = load_project(str(project)).get_entry_point("main")
    assert full_parameters(entry_point, {"solver": "sgd", "alpha": 0.2}) == {
        "alpha": "0.2",
        "l1_ratio": "0.1",
        "max_iter": "100",
        "solver": "sgd",
        "data": "data/train.csv",
    }


def test_full_parameters_are_what_mlflow_run_logs(project, tmp_path, monkeypatch):
    import mlflow
    import mlflow.projects

    monkeypatch.chdir(project)  # `mlflow run` resolves the relative default against its cwd
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    try:
        given = {"alpha": "0.3", "max_iter": "7"}
        submitted = mlflow.projects.run(str(project), "main", parameters=given, env_manager="local")
        logged = mlflow.MlflowClient(tracking).get_run(submitted.run_id).data.params
    finally:
        mlflow.set_tracking_uri(None)
    entry_point = load_project(str(project)).get_entry_point("main")
    assert logged == full_parameters(entry_point, given)


def test_full_parameters_of_an_entry_point_declaring_nothing(tmp_path):
    (tmp_path / "t.py").write_text("")
    entry_point = get_entry_point(load_project(str(tmp_path)), "t.py", str(tmp_path))
    assert full_parameters(entry_point, {"x": 1, "y": True}) == {"x": "1", "y": "True"}


# ---- path parameters ---------------------------------------------------------------------------


def test_path_default_resolves_against_the_project_from_another_cwd(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    checked = preflight(config_for(tmp_path / "cfg", project=str(project)))
    params = checked.trial_parameters({"alpha": 0.1})
    assert params["data"] == str(project / "data" / "train.csv")
    # MLflow itself reads the relative default against the working directory, and fails here;
    # with the resolved value it computes the command.
    storage = tmp_path / "storage"
    storage.mkdir()
    with pytest.raises(Exception, match="no such file or directory"):
        checked.entry_point.compute_command({"alpha": "0.1"}, str(storage))
    command = checked.entry_point.compute_command({k: str(v) for k, v in params.items()}, str(storage))
    assert str(project / "data" / "train.csv") in command


def test_swept_relative_paths_resolve_against_the_project(project, tmp_path):
    (project / "data" / "other.csv").write_text("x,y\n1,2\n")
    entry_point = load_project(str(project)).get_entry_point("main")
    resolved = resolve_path_parameters(entry_point, {"data": "data/other.csv", "alpha": 1}, str(project))
    assert resolved == {"data": str(project / "data" / "other.csv"), "alpha": 1}
    absolute = str(tmp_path / "abs.csv")
    assert resolve_path_parameters(entry_point, {"data": absolute}, str(project))["data"] == absolute
    remote = "s3://bucket/train.csv"
    assert resolve_path_parameters(entry_point, {"data": remote}, str(project))["data"] == remote


def test_missing_swept_path_is_refused(project, tmp_path):
    config = config_for(
        tmp_path, project=str(project), parameters={"alpha": 0.1, "data": ["data/train.csv", "data/nope.csv"]}
    )
    message = refused(config)
    missing = project / "data" / "nope.csv"
    assert (
        f"parameters.data: path parameter 'data' of entry point 'main': no such file or directory: {missing}"
        in message
    )
    assert f"relative paths resolve against the project directory {project}" in message


def test_missing_path_default_is_refused(project, tmp_path):
    (project / "data" / "train.csv").unlink()
    message = refused(config_for(tmp_path, project=str(project)))
    assert "its MLproject default 'data/train.csv'" in message


PLUGIN_PATH = str(Path(__file__).resolve().parent / "backend_plugin")  # registers `sweeper-test`


def test_paths_are_not_checked_for_remote_backends(project, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(PLUGIN_PATH)
    (project / "data" / "train.csv").unlink()
    assert preflight(config_for(tmp_path, project=str(project), backend="sweeper-test")) is not None


def test_unknown_backend_is_refused_with_the_known_ones(project, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(PLUGIN_PATH)
    message = refused(config_for(tmp_path, project=str(project), backend="sweeper-tset"))
    assert "backend: unknown backend 'sweeper-tset'; did you mean 'sweeper-test'?" in message
    assert "local, databricks, kubernetes, sweeper-test" in message


def test_databricks_backend_needs_the_databricks_tracking_store(project, tmp_path):
    message = refused(config_for(tmp_path, project=str(project), backend="databricks"))
    assert "backend: 'databricks' needs the Databricks tracking store" in message


# ---- the environment ---------------------------------------------------------------------------


def _path_without(tmp_path: Path, *programs: str) -> str:
    """A PATH with the basic tools but none of `programs`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("git", "bash", "sh"):
        found = shutil.which(tool)
        if found and tool not in programs:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_missing_uv_is_refused(project, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_without(tmp_path, "uv"))
    message = refused(config_for(tmp_path / "cfg", project=str(project), env_manager="uv"))
    assert "env_manager: 'uv' needs 'uv' to build the trials' environment, and it is not on PATH" in message
    assert "install uv" in message
    assert_nothing_written(tmp_path / "cfg")


def test_present_uv_is_accepted(project, tmp_path):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "uv").write_text("#!/bin/sh\n")
    (bin_dir / "uv").chmod(0o755)
    check_env_manager(load_project(str(project)), "uv", {"PATH": str(bin_dir)})
    with pytest.raises(ProjectError, match="'uv' needs 'uv'"):
        check_env_manager(load_project(str(project)), "uv", {"PATH": str(tmp_path)})


def test_virtualenv_needs_pyenv(project, tmp_path):
    with pytest.raises(ProjectError, match="'virtualenv' needs 'pyenv'.*install pyenv"):
        check_env_manager(
            load_project(str(project)), "virtualenv", {"PATH": _path_without(tmp_path, "pyenv")}
        )


def test_conda_refuses_a_python_env_project_as_mlflow_does(project):
    with pytest.raises(ProjectError, match="not conda"):
        check_env_manager(load_project(str(project)), "conda", {"PATH": os.environ["PATH"]})


def test_missing_conda_is_refused(tmp_path, monkeypatch):
    conda_project = tmp_path / "conda_proj"
    shutil.copytree(PROJECT_PLAIN, conda_project)
    (conda_project / "conda.yaml").write_text("name: x\ndependencies: [python]\n")
    monkeypatch.delenv("MLFLOW_CONDA_HOME", raising=False)
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MLFLOW_CONDA_CREATE_ENV_CMD", raising=False)
    with pytest.raises(ProjectError, match="'conda' needs 'conda'"):
        check_env_manager(
            load_project(str(conda_project)), "conda", {"PATH": _path_without(tmp_path, "conda")}
        )


def test_env_manager_local_needs_no_tool(project):
    check_env_manager(load_project(str(project)), "local", {"PATH": ""})


# ---- command configs ---------------------------------------------------------------------------


def test_command_placeholder_naming_no_parameter_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:  # refused when the config is read
        config_for(
            tmp_path,
            entry_point=None,
            command=f"python {PROJECT_REAL / 'flags.py'} --lr {{lrr}}",
            parameters={"lr": [0.1], "epochs": 2},
        )
    assert info.value.exit_code == EXIT_USAGE
    path = tmp_path / "sweep.yaml"
    assert str(info.value).startswith(f"{path.resolve()}: command: placeholder '{{lrr}}' names no parameter")
    assert "did you mean '{lr}'?" in str(info.value)


def test_command_with_known_placeholders_passes(tmp_path):
    (tmp_path / "t.py").write_text("")
    config = config_for(
        tmp_path, entry_point=None, command="python t.py --lr={lr} {{x}}", parameters={"lr": [0.1]}
    )
    assert preflight(config) is None


# ---- a git project -----------------------------------------------------------------------------


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _served_git_project(tmp_path: Path, monkeypatch) -> str:
    """A git URI as users write one, served from a local repository (no network)."""
    repo = tmp_path / "repo"
    shutil.copytree(PROJECT_REAL, repo, ignore=shutil.ignore_patterns("__pycache__"))
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", cwd=repo)
    uri = "https://git.example.invalid/team/project.git"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.file://{repo}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", uri)
    return uri


def test_git_project_errors_name_the_uri_and_leave_no_copy(tmp_path, monkeypatch):
    uri = _served_git_project(tmp_path, monkeypatch)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    message = refused(config_for(tmp_path / "cfg", project=uri, entry_point="mian"))
    assert f"no entry point 'mian' in the project {uri} (did you mean 'main'?)" in message, message
    message = refused(config_for(tmp_path / "cfg", project="https://127.0.0.1:9/team/nothing.git"))
    assert "cannot fetch" in message
    assert list(scratch.iterdir()) == [], "a fetched or half-fetched copy was left behind"


def test_git_project_is_fetched_once_and_checked(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    uri = _served_git_project(tmp_path, monkeypatch)
    assert is_remote_uri(uri)

    source = ProjectSource(uri)
    config = config_for(tmp_path / "cfg", project=uri)
    checked = preflight(config, source=source)
    fetched = Path(checked.work_dir)
    assert (
        fetched != repo and (fetched / "MLproject").is_file() and (fetched / "data" / "train.csv").is_file()
    )
    assert source.local_dir() == str(fetched)  # no second fetch
    assert checked.trial_parameters({})["data"] == str(fetched / "data" / "train.csv")
    source.close()
    assert not fetched.exists() and not fetched.parent.exists()


def test_unreachable_git_project_is_a_project_error(tmp_path):
    uri = "https://127.0.0.1:9/team/nothing.git"
    message = refused(config_for(tmp_path, project=uri))
    assert f"project: cannot fetch {uri}" in message


def test_remote_and_local_uris():
    assert is_remote_uri("https://github.com/mlflow/mlflow-example.git")
    assert is_remote_uri("git@github.com:mlflow/mlflow-example.git")
    assert is_remote_uri("https://github.com/mlflow/mlflow#examples/sklearn_elasticnet_wine")
    assert not is_remote_uri("/home/me/project")
    assert not is_remote_uri("file:///home/me/project")
    assert not is_remote_uri("relative/dir")


def test_entry_point_names_come_from_compat(project):
    assert compat.entry_point_names(load_project(str(project))) == ["main", "needs_alpha"]


# ---- python in a trial -------------------------------------------------------------------------

PROBE = (
    "import json, os, shutil, subprocess, sys\n"
    "from mlflow_sweeper.preflight import trial_env_path\n"
    "env = trial_env_path(os.environ)\n"
    "found = shutil.which('python', path=env['PATH'])\n"
    "ran = subprocess.run(['python', '-c', 'import sys; print(sys.executable)'], env=env,\n"
    "                     capture_output=True, text=True).stdout.strip()\n"
    "print(json.dumps({'found': found, 'ran': ran, 'ours': sys.executable}))\n"
)


def _probe(env: dict) -> dict:
    import json

    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def _bare_env(path: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env["PATH"] = path
    return env


def test_unactivated_agent_gives_trials_its_own_python(tmp_path):
    """The console script run by its full path: the venv's bin is not on PATH."""
    ours = os.path.dirname(sys.executable)
    path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if p and os.path.realpath(p) != os.path.realpath(ours)
    )
    result = _probe(_bare_env(path or "/usr/bin:/bin"))
    assert os.path.dirname(result["found"]) == ours
    assert os.path.dirname(result["ran"]) == ours


def test_activated_environment_wins(tmp_path):
    other = tmp_path / "other-env" / "bin"
    other.mkdir(parents=True)
    (other / "python").symlink_to(shutil.which("python3") or "/usr/bin/python3")
    env = _bare_env(str(other) + os.pathsep + "/usr/bin:/bin")
    env["VIRTUAL_ENV"] = str(other.parent)
    assert trial_env_path(env)["PATH"] == env["PATH"]
    env.pop("VIRTUAL_ENV")
    env["CONDA_PREFIX"] = str(other.parent)
    assert trial_env_path(env)["PATH"] == env["PATH"]
    # Without an activation, the other python on PATH is an accident: ours goes first.
    env.pop("CONDA_PREFIX")
    assert trial_env_path(env)["PATH"].split(os.pathsep)[0] == os.path.dirname(
        os.path.abspath(sys.executable)
    )


def test_path_already_leading_to_our_python_is_left_alone():
    ours = os.path.dirname(os.path.abspath(sys.executable))
    env = _bare_env(ours + os.pathsep + "/usr/bin:/bin")
    assert trial_env_path(env) == env


def test_zip_project_is_unpacked_once(project, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "proj"), "zip", project)
    source = ProjectSource(archive)
    assert source.remote
    checked = preflight(config_for(tmp_path / "cfg", project=archive), source=source)
    assert (Path(checked.work_dir) / "MLproject").is_file()
    assert source.local_dir() == checked.work_dir
    source.close()
    assert not Path(checked.work_dir).exists()
    message = refused(config_for(tmp_path / "cfg2", project=str(tmp_path / "nope.zip")))
    assert f"project: no such file: {tmp_path / 'nope.zip'}" in message


# ---- a command's program -----------------------------------------------------------------------


def command_config(tmp_path: Path, command: str):
    return config_for(tmp_path, entry_point=None, command=command, parameters={"lr": [0.1]})


def test_misspelt_command_program_is_a_config_error(tmp_path):
    with pytest.raises(
        ConfigError, match=r"command: program 'pyhton' is not on PATH \(did you mean 'python'\?\)"
    ):
        preflight(command_config(tmp_path, "pyhton train.py"))


def test_missing_command_script_is_a_config_error(tmp_path):
    config = command_config(tmp_path, "python trian.py --lr {lr}")
    with pytest.raises(ConfigError) as info:
        preflight(config)
    assert f"command: no such script: {tmp_path / 'trian.py'} (commands run in the config's directory" in str(
        info.value
    )


def test_command_script_relative_to_the_config_from_another_cwd(tmp_path, monkeypatch):
    shutil.copy(PROJECT_REAL / "flags.py", tmp_path / "flags.py")
    monkeypatch.chdir(PROJECT_PLAIN)
    assert preflight(command_config(tmp_path, "python flags.py --lr {lr}")) is None


def test_missing_command_executable_path(tmp_path):
    with pytest.raises(ConfigError, match="no such executable: .*bin/train"):
        preflight(command_config(tmp_path, "./bin/train --lr {lr}"))


def test_a_command_file_that_is_there_but_not_executable_says_so(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "train").write_text("#!/bin/sh\n")  # no execute bit
    with pytest.raises(ConfigError, match=r"bin/train is not executable: `chmod \+x "):
        preflight(command_config(tmp_path, "./bin/train --lr {lr}"))
