"""What a sweep shows in the MLflow UI, end to end with real agents: the parent's description
while trials run and after the close, the best-so-far curve, the best model registered once,
and (in a real browser against a real `mlflow server`) the pages the agent links to."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time

import pytest
from conftest import PROJECT, REQUIRE_SERVERS, mlflow_runs, run_cli, start_cli, write_config
from mlflow.tracking import MlflowClient

from mlflow_sweeper.config import load_config
from mlflow_sweeper.config.register import Registration

UI_TRIAL = PROJECT / "ui_trial.py"
DESCRIPTION = "mlflow.note.content"
TWO_OBJECTIVES = {
    "metrics": [{"name": "score", "direction": "maximize"}, {"name": "cost", "direction": "minimize"}]
}
LINK = re.compile(r"\(#/experiments/(\d+)/runs/([0-9a-f]{32})\)")


def output(result) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def ui_config(tmp_path, **keys):
    keys.setdefault("command", f"{sys.executable} {UI_TRIAL}")
    return write_config(tmp_path, **keys)


def parent_of(uri: str):
    return next(r for r in mlflow_runs(uri) if r.data.tags.get("sweeper.role") == "parent")


def uri_of(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_the_description_is_current_while_trials_run_and_complete_after_the_close(tmp_path):
    """The live description, the closing one, and the best-so-far curve on the parent."""
    parameters = {"x": [1, 2, 3, 4, 5, 6], "y": [10], "sleep": 1.5}
    config = ui_config(tmp_path, parameters=parameters)
    agent = start_cli("sweep", config, "-j", "2", cwd=tmp_path)
    try:
        seen = None
        deadline = time.monotonic() + 200
        while agent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                text = parent_of(uri_of(tmp_path)).data.tags.get(DESCRIPTION, "")
            except Exception:  # noqa: BLE001 - the store is being created
                continue
            if ": running.**" in text and "**Best score" in text:
                seen = text
                break
        assert seen is not None, "no running description with a best was read while trials ran"
        assert "trials ended" in seen and "/6 trials ended" in seen
    finally:
        out, _ = agent.communicate(timeout=240)
    assert agent.returncode == 0, out
    uri = uri_of(tmp_path)
    parent = parent_of(uri)
    text = parent.data.tags[DESCRIPTION]
    complete = "**Sweep `exp/s1`: complete.** 6/6 trials ended (6 complete, 0 pruned, 0 failed)"
    assert text.startswith(complete), out
    assert "**Best score (maximize): 16** in [trial" in text
    assert "[report/report.html](#/experiments/" in text and "### Parameter importances" in text
    # Every link leads to a real run of the sweep: the best one first.
    client = MlflowClient(uri)
    linked = LINK.findall(text)
    assert len(linked) == 7  # the best, then the six rows of the table
    for experiment_id, run_id in linked:
        run = client.get_run(run_id)
        assert run.info.experiment_id == experiment_id == parent.info.experiment_id
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert linked[0][1] == parent.data.tags["sweeper.best_run_id"]
    # The parent's best-so-far curve: ascending x makes nearly every trial an improvement. Each
    # point's step is the number of trials ended when it became the best, so the steps rise.
    history = client.get_metric_history(parent.info.run_id, "score")
    points = sorted((p.step, p.timestamp, p.value) for p in history)
    assert [v for _, _, v in points] == sorted(v for _, _, v in points)  # non-decreasing (maximize)
    steps = [s for s, _, _ in points]
    assert steps == sorted(set(steps)) and 5 <= steps[-1] <= 6 and len(points) >= 3
    assert points[-1][2] == 16.0


@pytest.mark.extended  # in process: test_ui_description.py
def test_several_objectives_describe_the_pareto_front(tmp_path):
    spec = TWO_OBJECTIVES
    config = ui_config(tmp_path, parameters={"x": [1, 2], "y": [0, 5]}, spec=spec)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    text = parent_of(uri_of(tmp_path)).data.tags[DESCRIPTION]
    assert "### Pareto front: " in text and "Best" not in text
    assert "| trial | score | cost |" in text


def test_several_objectives_with_register_exit_2_before_anything_is_written(tmp_path):
    spec = TWO_OBJECTIVES
    config = ui_config(tmp_path, spec=spec, register={"model_name": "m"}, fresh_store=True)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 2, output(result)
    said = result.stderr + result.stdout
    assert "register" in said and "several objectives" in said
    assert not (tmp_path / "mlflow.db").exists()


def test_three_agents_finishing_together_register_one_version_with_the_alias(tmp_path):
    register = {"model_name": "ui-model", "alias": "sweep-best"}
    parameters = {"x": [1, 2, 3, 4, 5, 6], "y": [0], "model": "logged", "sleep": 0.5}
    config = ui_config(tmp_path, parameters=parameters, register=register)
    agents = [start_cli("sweep", config, "-j", "2", cwd=tmp_path) for _ in range(3)]
    outs = [agent.communicate(timeout=300)[0] for agent in agents]
    assert all(agent.returncode == 0 for agent in agents), "\n----\n".join(outs)
    uri = uri_of(tmp_path)
    client = MlflowClient(uri)
    versions = client.search_model_versions("name = 'ui-model'")
    assert len(versions) == 1
    version = versions[0]
    parent = parent_of(uri)
    best_run = parent.data.tags["sweeper.best_run_id"]
    assert version.run_id == best_run
    assert version.tags["sweeper.sweep"] == "exp/s1" and version.tags["score"] == "6"
    assert client.get_run(best_run).data.tags["sweeper.trial"] == version.tags["sweeper.trial"]
    assert client.get_model_version_by_alias("ui-model", "sweep-best").version == version.version
    assert parent.data.tags["sweeper.registered_model"] == f"ui-model/{version.version}"
    assert f"Registered as model **ui-model** version **{version.version}**" in parent.data.tags[DESCRIPTION]
    # shown on the logged model's page, as MLflow's own register_model would
    (model,) = client.search_logged_models(
        [parent.info.experiment_id], filter_string=f"source_run_id = '{best_run}'"
    )
    assert json.loads(model.tags["mlflow.modelVersions"]) == [
        {"name": "ui-model", "version": version.version}
    ]
    # A closer that crashed is followed by another: the close runs again, nothing new registered.
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert len(client.search_model_versions("name = 'ui-model'")) == 1


def test_a_run_artifact_is_registered_when_there_is_no_logged_model(tmp_path):
    parameters = {"x": [1, 2], "y": [0], "model": "artifact"}
    config = ui_config(tmp_path, parameters=parameters, register={"model_name": "files"})
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    (version,) = MlflowClient(uri_of(tmp_path)).search_model_versions("name = 'files'")
    assert version.source.endswith("/model") and version.tags["sweeper.trial"] == "1"


def test_a_best_trial_without_a_model_is_a_warning_and_the_sweep_completes(tmp_path):
    config = ui_config(tmp_path, parameters={"x": [1, 2], "y": [0]}, register={"model_name": "none"})
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "warning: register: the best trial" in result.stderr and "logged no model" in result.stderr
    parent = parent_of(uri_of(tmp_path))
    assert parent.info.status == "FINISHED"
    assert "> **Warning:** the best trial (1, run" in parent.data.tags[DESCRIPTION]
    assert "sweeper.registered_model" not in parent.data.tags
    assert MlflowClient(uri_of(tmp_path)).search_model_versions("name = 'none'") == []


class Registry:
    """A real SQLite store with a parent run and a trial run, for `register_best` in process."""

    def __init__(self, tmp_path, monkeypatch):
        # The process's own store is another one (an agent given `mlflow_storage` in its config):
        # registering must not depend on it.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
        self.client = client = MlflowClient(uri_of(tmp_path))
        self.experiment_id = client.create_experiment("exp")
        self.parent_id = client.create_run(self.experiment_id).info.run_id
        self.run_id = client.create_run(self.experiment_id).info.run_id
        self.model_dir = tmp_path / "model"
        self.model_dir.mkdir()
        (self.model_dir / "MLmodel").write_text("flavors: {}\n")
        self.config = load_config(ui_config(tmp_path, parameters={"x": [1]}, register={"model_name": "m"}))

    def register(self, registration, value: float = 1.0):
        from optuna.distributions import IntDistribution
        from optuna.trial import create_trial

        from mlflow_sweeper.ui.register import register_best

        best = create_trial(
            params={"x": 1}, distributions={"x": IntDistribution(0, 2)}, value=value,
            user_attrs={"mlflow_run_id": self.run_id},
        )  # fmt: skip
        config = dataclasses.replace(self.config, register=registration)  # past the config's checks
        return register_best(self.client, config, self.experiment_id, self.parent_id, best)


def test_a_registry_that_refuses_is_a_warning_not_an_error(tmp_path, monkeypatch):
    """Whatever the registry answers at the close, the close goes on (the parent is finished)."""
    from mlflow_sweeper.ui.register import REGISTER_WARNING_TAG, REGISTERED_TAG

    registry = Registry(tmp_path, monkeypatch)
    registry.client.log_artifacts(registry.run_id, str(registry.model_dir), "model")
    registry.client.set_tag(registry.parent_id, REGISTERED_TAG, "earlier/1")  # an earlier close's, stale now
    outcome = registry.register(Registration("not/allowed"))
    assert outcome.version is None
    assert "could not register the best trial's model in 'not/allowed'" in outcome.warning
    tags = registry.client.get_run(registry.parent_id).data.tags
    assert REGISTERED_TAG not in tags and "not/allowed" in tags[REGISTER_WARNING_TAG]


def test_several_logged_models_need_the_named_one_and_the_value_is_tagged_exactly(tmp_path, monkeypatch):
    registry = Registry(tmp_path, monkeypatch)
    client = registry.client
    for name in ("a", "b"):
        model = client.create_logged_model(registry.experiment_id, name=name, source_run_id=registry.run_id)
        client.log_model_artifacts(model.model_id, str(registry.model_dir))
        client.finalize_logged_model(model.model_id, "READY")
    value = 0.12345678901234567
    outcome = registry.register(Registration("m"), value)
    assert outcome.version is None and "several models (a, b) and none is named 'model'" in outcome.warning
    assert registry.register(Registration("m", artifact_path="b"), value).version == "m/1"
    (version,) = client.search_model_versions("name = 'm'")
    assert float(version.tags["score"]) == value


# ---- in a real browser against a real tracking server ----------------------------------------------


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def dump_dom(browser: str, url: str, profile, wait_ms: int = 20000) -> str:
    argv = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        f"--user-data-dir={profile}", "--window-size=1400,1000", f"--virtual-time-budget={wait_ms}",
        "--dump-dom", url,
    ]  # fmt: skip
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=180).stdout


def text_of(dom: str) -> str:
    return re.sub(r"<[^>]+>", "", dom)


@pytest.mark.browser
@pytest.mark.timeout(900)  # a server, a sweep and two page loads in a browser
def test_the_printed_links_show_the_nested_trials_and_the_description_in_a_browser(mlflow_server, tmp_path):
    browser = _chromium()
    if browser is None:
        message = "chromium is not installed (Debian package `chromium`)"
        if REQUIRE_SERVERS:
            pytest.fail(message + " (MLFLOW_SWEEPER_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(message)
    config = ui_config(tmp_path, parameters={"x": [1, 2, 3], "y": [0]}, mlflow_storage=mlflow_server)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    printed = result.stdout + result.stderr
    runs_url = re.search(r"runs \(trials nested\): (\S+)", printed).group(1)
    parent_url = re.search(r"parent run page: (\S+)", printed).group(1)
    parent = parent_of(mlflow_server)
    experiment_id, run_id = parent.info.experiment_id, parent.info.run_id
    assert parent_url == f"{mlflow_server}/#/experiments/{experiment_id}/runs/{run_id}"
    status = run_cli("status", config, cwd=tmp_path)
    assert runs_url in status.stdout and parent_url in status.stdout
    again = run_cli("sweep", config, cwd=tmp_path)  # finished: nothing runs, the links still print
    assert "already complete" in output(again) and parent_url in output(again) and runs_url in output(again)

    # The runs page lists the parent (its trials folded under it: 4 runs match, one row shows).
    runs_page = dump_dom(browser, runs_url, tmp_path / "profile-runs")
    assert f"/runs/{run_id}" in runs_page and re.search(r"4\s*matching runs", text_of(runs_page))
    # The parent's page: its child runs, and the description with its table and links.
    parent_page = dump_dom(browser, parent_url, tmp_path / "profile-parent")
    shown = text_of(parent_page)
    assert all(f"s1-{n}" in shown for n in range(3)), "the trials are not nested under the parent"
    assert "exp/s1" in parent_page and "Best score (maximize)" in parent_page
    assert "<table" in parent_page and f'href="#/experiments/{experiment_id}/runs/' in parent_page
