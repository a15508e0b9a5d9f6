"""The sweep report: trials.csv, an offline report.html, PNGs, importances; `report` and `status --json`.

A real command-mode grid sweep runs once for the module; in-process tests build reports from
real Optuna trials (multi-objective, sensitivity, a chart that fails, a sweep without `spec`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import optuna
import pytest
from conftest import REQUIRE_SERVERS, cli_env, mlflow_runs, run_cli, write_config

from mlflow_sweeper.config import Metric, Objective, load_config
from mlflow_sweeper.report import build_report
from mlflow_sweeper.report.charts import CHARTS, Chart

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = {"x": [1, 2, 3], "y": [10, 20]}


def output(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def tracking_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished 6-trial grid sweep (score = x + y) on SQLite stores."""
    directory = tmp_path_factory.mktemp("report")
    config = write_config(directory, parameters=GRID)
    result = run_cli("sweep", config, "-j", "3", cwd=directory)
    assert result.returncode == 0, output(result)
    return {"dir": directory, "config": config}


def assert_valid_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100, (path, pixels.shape)
    assert pixels.min() != pixels.max(), f"{path} is blank"


def assert_self_contained(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I), "a script is loaded from elsewhere"
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?(https?:)?//", text, re.I), "a stylesheet is fetched"
    assert not re.search(r"<(img|iframe)[^>]*src\s*=\s*[\"']?(https?:)?//", text, re.I)
    assert not re.search(r"@import\s+url\(\s*[\"']?(https?:)?//", text, re.I)
    assert "Plotly.newPlot" in text, "no interactive chart on the page"
    assert re.search(r"plotly\.js v\d", text), "plotly.js is not inlined"


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---- the CLI on a real sweep ---------------------------------------------------------------------


def test_report_command_writes_the_report_of_a_real_sweep(swept, tmp_path):
    out = tmp_path / "out"
    result = run_cli("report", swept["config"], "--out", out, cwd=swept["dir"])
    assert result.returncode == 0, output(result)
    assert str(out / "report.html") in result.stdout
    rows = read_rows(out / "trials.csv")
    assert len(rows) == 6
    assert list(rows[0]) == [
        "number", "state", "attempts", "x", "y", "value", "run_id", "start", "duration", "fail_reason",
    ]  # fmt: skip
    children = [r for r in mlflow_runs(tracking_uri(swept["dir"])) if r.data.tags["sweeper.role"] == "trial"]
    assert sorted(row["run_id"] for row in rows) == sorted(r.info.run_id for r in children)
    for row in rows:
        assert row["state"] == "COMPLETE" and row["attempts"] == "1"
        assert float(row["value"]) == float(row["x"]) + float(row["y"])
        assert row["start"] and float(row["duration"]) > 0
    assert_self_contained(out / "report.html")
    for name in ("history.png", "importance.png", "parallel.png"):
        assert_valid_png(out / name)
    assert not (out / "pareto.png").exists() and not (out / "sensitivity.png").exists()


def test_report_defaults_to_a_directory_under_output_dir(swept):
    result = run_cli("report", swept["config"], cwd=swept["dir"])
    assert result.returncode == 0, output(result)
    assert (swept["dir"] / "sweeps" / "reports" / "exp_s1" / "report.html").is_file()


def test_report_into_a_directory_that_cannot_be_made_exits_2(swept, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_cli("report", swept["config"], "--out", blocker / "out", cwd=swept["dir"])
    assert result.returncode == 2 and "Traceback" not in output(result), output(result)
    assert f"cannot write the report into {blocker / 'out'}" in output(result), output(result)


def test_report_log_puts_the_report_on_the_parent_run(swept, tmp_path):
    result = run_cli("report", swept["config"], "--out", tmp_path / "out", "--log", cwd=swept["dir"])
    assert result.returncode == 0, output(result)
    from mlflow.tracking import MlflowClient

    runs = mlflow_runs(tracking_uri(swept["dir"]))
    parent = next(r for r in runs if r.data.tags["sweeper.role"] == "parent")
    client = MlflowClient(tracking_uri=tracking_uri(swept["dir"]))
    names = {Path(item.path).name for item in client.list_artifacts(parent.info.run_id, "report")}
    assert {"trials.csv", "report.html", "history.png", "importance.png", "parallel.png"} <= names
    metrics = client.get_run(parent.info.run_id).data.metrics
    assert {"importance/x", "importance/y"} <= set(metrics), metrics
    assert math.isclose(metrics["importance/x"] + metrics["importance/y"], 1.0, rel_tol=1e-6)
    local = Path(client.download_artifacts(parent.info.run_id, "report/history.png", str(tmp_path)))
    assert_valid_png(local)


def test_report_for_sweep_builds_and_logs_from_the_real_stores(swept, tmp_path):
    """The call the closing agent makes, on the real SweepStudy and Recorder of the sweep."""
    from mlflow_sweeper.opening import open_sweep
    from mlflow_sweeper.report import report_for_sweep

    config = load_config(swept["config"])
    sweep = open_sweep(config, create=False)
    study, recorder = sweep.study, sweep.recorder
    report = report_for_sweep(config, study, recorder, tmp_path / "close", log=True)
    assert report is not None and not report.problems, report and report.problems
    assert len(read_rows(tmp_path / "close" / "trials.csv")) == 6
    parent = study.parent_run_id()
    listed = {Path(item.path).name for item in recorder.client.list_artifacts(parent, "report")}
    assert {path.name for path in report.files} <= listed
    metrics = recorder.client.get_run(parent).data.metrics
    assert metrics["importance/x"] == pytest.approx(report.importance["x"])
    # at the step of the trials it read (6), as the close logged it before: one point per step
    history = recorder.client.get_metric_history(parent, "importance/x")
    assert [m.step for m in history] == [6], history


def test_report_of_a_sweep_that_does_not_exist_says_so(swept):
    config = write_config(swept["dir"], name="other.yaml", sweep_name="nope", parameters=GRID)
    result = run_cli("report", config, cwd=swept["dir"])
    assert result.returncode == 2, output(result)
    assert "no such sweep" in result.stderr and "Traceback" not in result.stderr


STATUS_THEN_MODULES = """
import runpy, sys
sys.argv = ["mlflow-sweeper", "status", sys.argv[1]]
try:
    runpy.run_module("mlflow_sweeper", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
print("imported mlflow:", "mlflow" in sys.modules)
"""


def test_status_reads_a_database_store_without_importing_mlflow(swept):
    """Importing MLflow takes seconds, most of what `status` took: a database store's parent run
    status is read without it."""
    result = subprocess.run(
        [sys.executable, "-c", STATUS_THEN_MODULES, str(swept["config"])],
        cwd=swept["dir"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, output(result)
    assert "(FINISHED)" in result.stdout and "points: 6/6 done" in result.stdout, result.stdout
    assert result.stdout.strip().endswith("imported mlflow: False"), result.stdout


def test_status_json_of_an_existing_and_a_missing_sweep(swept):
    missing = write_config(swept["dir"], name="missing.yaml", sweep_name="missing", parameters=GRID)
    result = run_cli("status", swept["config"], missing, "--json", cwd=swept["dir"])
    assert result.returncode == 0, output(result)
    assert not list(swept["dir"].rglob("*missing*/")), "status made a folder for a missing sweep"
    data = json.loads(result.stdout)
    fields = {"sweep", "parent_run_id", "parent_status", "budget", "done", "running", "failed", "pruned"}
    fields |= {"remaining", "best"}
    found, absent = data["sweeps"]
    assert fields <= set(found) and set(found) == set(absent)  # the same keys, whether it exists or not
    assert found["exists"] is True and absent["exists"] is False
    parent = next(
        r for r in mlflow_runs(tracking_uri(swept["dir"])) if r.data.tags["sweeper.role"] == "parent"
    )
    assert found["sweep"] == "exp/s1" and found["parent_run_id"] == parent.info.run_id
    assert found["parent_status"] == "FINISHED"
    assert (found["budget"], found["done"], found["running"], found["failed"], found["pruned"]) == (
        6,
        6,
        0,
        0,
        0,
    )
    assert found["remaining"] == 0
    assert found["best"]["value"] == 23.0 and found["best"]["params"] == {"x": 3, "y": 20}
    assert found["best"]["run_id"] == parent.data.tags["sweeper.best_run_id"]
    assert absent["sweep"] == "exp/missing" and absent["parent_run_id"] is None
    assert absent["best"] is None and absent["parent_status"] is None
    counts = ("budget", "done", "running", "failed", "pruned", "remaining")
    assert [absent[name] for name in counts] == [0] * 6


# ---- in-process reports from real Optuna trials ----------------------------------------------------


def _config(tmp_path: Path, **changes):
    config = load_config(write_config(tmp_path, parameters=GRID))
    return dataclasses.replace(config, **changes) if changes else config


def _trials(directions: list[str], objective, n: int = 12) -> list:
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=n)
    return study.trials


def _two_params(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_int("y", 1, 5)
    return x * 3 + y


def test_a_chart_that_fails_leaves_the_rest_of_the_report(tmp_path):
    def broken(ctx):
        raise RuntimeError("this chart cannot be drawn")

    charts = (Chart("broken", "Broken chart", lambda ctx: True, broken, broken), *CHARTS)
    report = build_report(
        _config(tmp_path), _trials(["maximize"], _two_params), tmp_path / "out", charts=charts
    )
    names = {path.name for path in report.files}
    assert {"trials.csv", "report.html", "history.png", "importance.png", "parallel.png"} <= names
    assert "broken.png" not in names
    assert any("Broken chart" in p for p in report.problems) and any(
        "broken.png" in p for p in report.problems
    )
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "this chart cannot be drawn" in page
    assert_self_contained(tmp_path / "out" / "report.html")
    assert set(report.metrics()) == {"importance/x", "importance/y"}

    # One of the images every report has, failing: its image says it could not be drawn.
    failing = tuple(dataclasses.replace(c, png=broken) if c.key == "history" else c for c in CHARTS)
    trials = _trials(["maximize"], _two_params)
    report = build_report(_config(tmp_path), trials, tmp_path / "b", charts=failing)
    assert "history.png" in {path.name for path in report.files}
    assert_valid_png(tmp_path / "b" / "history.png")
    assert any("history.png" in p for p in report.problems)


def test_multi_objective_report_has_a_pareto_front_and_a_column_per_metric(tmp_path):
    metrics = [{"name": "acc", "direction": "maximize"}, {"name": "latency", "direction": "minimize"}]
    config = _config(tmp_path)
    spec = Objective("maximize", None, metrics=tuple(Metric(m["name"], m["direction"]) for m in metrics))
    config = dataclasses.replace(config, raw={**config.raw, "spec": {"metrics": metrics}}, objective=spec)

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_int("y", 1, 5)
        return x + y, x * y

    report = build_report(config, _trials(["maximize", "minimize"], objective), tmp_path / "out")
    assert not report.problems, report.problems
    assert_valid_png(tmp_path / "out" / "pareto.png")
    rows = read_rows(tmp_path / "out" / "trials.csv")
    assert len(rows) == 12 and {"acc", "latency"} <= set(rows[0]) and "value" not in rows[0]
    assert {"importance/x", "importance/acc/x", "importance/latency/y"} <= set(report.metrics())


def test_trials_csv_has_every_parameter_fixed_ones_included_in_config_order(tmp_path):
    config = load_config(write_config(tmp_path, parameters={"seed": 7, "x": [1, 2, 3], "y": [10, 20]}))
    trials = _trials(["maximize"], lambda t: t.suggest_int("x", 1, 3) + t.suggest_int("y", 10, 20), n=3)
    report = build_report(config, trials, tmp_path / "out")
    assert not report.problems, report.problems
    rows = read_rows(tmp_path / "out" / "trials.csv")
    assert list(rows[0])[3:6] == ["seed", "x", "y"]
    assert {row["seed"] for row in rows} == {"7"}


def test_conditional_parameters_get_an_importance_too(tmp_path):
    """Optuna's evaluators read only parameters every trial has: `momentum` and `beta1` exist in
    some trials only, yet each gets its `importance/<param>`, and the real study is untouched."""
    parameters = {
        "opt": ["sgd", "adam"],
        "momentum": {"low": 0.0, "high": 0.9, "when": {"opt": "sgd"}},
        "beta1": {"low": 0.8, "high": 0.99, "when": {"opt": "adam"}},
    }
    config = load_config(write_config(tmp_path, algorithm="random", max_trials=20, parameters=parameters))

    def objective(trial):
        if trial.suggest_categorical("opt", ["sgd", "adam"]) == "sgd":
            return trial.suggest_float("momentum", 0.0, 0.9)
        return 1.0 + trial.suggest_float("beta1", 0.8, 0.99)

    trials = _trials(["maximize"], objective, n=20)
    report = build_report(config, trials, tmp_path / "out")
    assert not report.problems, report.problems
    metrics = report.metrics()
    assert {"importance/opt", "importance/momentum", "importance/beta1"} <= set(metrics), metrics
    assert sum(metrics[f"importance/{name}"] for name in ("opt", "momentum", "beta1")) == pytest.approx(1.0)
    assert all("momentum" not in t.params for t in trials if t.params["opt"] == "adam")


def test_sensitivity_report_charts_the_spread_of_each_parameter(tmp_path):
    config = _config(tmp_path, algorithm="sensitivity")
    base = {"x": 2.0, "y": 10}
    points = [base] + [{**base, "x": v} for v in (1.0, 3.0)] + [{**base, "y": v} for v in (20, 30)]
    study = optuna.create_study(direction="maximize")
    dists = {
        "x": optuna.distributions.FloatDistribution(1.0, 3.0),
        "y": optuna.distributions.IntDistribution(10, 30),
    }
    for params in points:
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=params["x"] + params["y"])
        )
    report = build_report(config, study.trials, tmp_path / "out")
    assert not report.problems, report.problems
    assert_valid_png(tmp_path / "out" / "sensitivity.png")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Sensitivity" in page


def test_a_chart_waiting_for_trials_says_so_on_the_page(tmp_path):
    report = build_report(_config(tmp_path), _trials(["maximize"], _two_params, n=1), tmp_path / "out")
    assert not report.problems and report.metrics() == {}
    assert "importance.png" in {path.name for path in report.files}  # saying why it has no bars
    assert_valid_png(tmp_path / "out" / "importance.png")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Parameter importances</h2>" in page
    assert "needs 2 completed trials (1 so far): no importances yet" in page
    assert page.index("Optimization history") < page.index("Parameter importances") < page.index("Timeline")

    report = build_report(_config(tmp_path), _trials(["maximize"], _two_params, n=3), tmp_path / "more")
    assert "so far" not in (tmp_path / "more" / "report.html").read_text(encoding="utf-8")


def test_a_sweep_without_an_objective_gets_its_table_and_page(tmp_path):
    config = _config(tmp_path)
    config = dataclasses.replace(config, objective=dataclasses.replace(config.objective, metric=None))
    study = optuna.create_study()
    dists = {"x": optuna.distributions.IntDistribution(1, 3)}
    for x in (1, 2, 3):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=dists, value=0.0))
    report = build_report(config, study.trials, tmp_path / "out")
    images = ("history.png", "importance.png", "parallel.png")  # each saying there is nothing to plot
    assert {path.name for path in report.files} == {"trials.csv", "report.html", *images}
    for name in images:
        assert_valid_png(tmp_path / "out" / name)
    assert not report.problems and report.metrics() == {}
    assert len(read_rows(tmp_path / "out" / "trials.csv")) == 3
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "the sweep has no objective (spec): nothing to plot" in page


# ---- the report in the MLflow UI, in a real browser ------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _screenshot(browser: str, url: str, path: Path, size: str = "1400,900", wait_ms: int = 15000) -> None:
    """A fresh profile each time: a shared or first-run profile can leave headless Chromium hanging."""
    argv = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        f"--user-data-dir={path.parent / (path.stem + '-profile')}", "--hide-scrollbars",
        f"--window-size={size}", f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url,
    ]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


@pytest.mark.browser
# A browser: test_ui.py; the report's files: test_report_command_writes_the_report_of_a_real_sweep.
@pytest.mark.extended
def test_the_report_image_renders_in_the_mlflow_ui(mlflow_server, tmp_path):
    browser = _chromium()
    if browser is None:
        message = "chromium is not installed (Debian package `chromium`)"
        if REQUIRE_SERVERS:
            pytest.fail(message + " (MLFLOW_SWEEPER_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(message)
    config = write_config(tmp_path, parameters={"x": [1, 2], "y": [10]}, mlflow_storage=mlflow_server)
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    result = run_cli("report", config, "--log", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    parent = next(r for r in mlflow_runs(mlflow_server) if r.data.tags["sweeper.role"] == "parent")
    image_url = f"{mlflow_server}/get-artifact?path=report/history.png&run_uuid={parent.info.run_id}"
    with urllib.request.urlopen(image_url, timeout=30) as response:
        assert response.status == 200
        assert response.read()[:8] == PNG_MAGIC
    page = (
        f"{mlflow_server}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
        "/artifacts/report/history.png"
    )
    shot = tmp_path / "ui.png"
    _screenshot(browser, page, shot)
    assert_valid_png(shot)
    # The history plot's axes are drawn on matplotlib's ggplot gray (#E5E5E5); the MLflow UI
    # around it has almost none of it (about 0.01% of the page without the image).
    from PIL import Image

    pixels = Image.open(shot).convert("RGB")
    gray = sum(1 for pixel in pixels.getdata() if pixel == (229, 229, 229))
    assert gray / (pixels.width * pixels.height) > 0.02, "the report's image is not shown in the MLflow UI"
