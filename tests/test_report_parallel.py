"""The parallel-coordinates PNG stays readable with many parameters: the most important ones get
an axis, at most MAX_AXES, and the others are named in a note on the image."""

from __future__ import annotations

import optuna
import pytest
from conftest import write_config

from mlflow_sweeper.config import load_config
from mlflow_sweeper.report import build_report
from mlflow_sweeper.report.context import ReportContext
from mlflow_sweeper.report.parallel_png import MAX_AXES, parallel_png, short_label
from mlflow_sweeper.report.study_copy import in_memory_study

NAMES = [f"a_rather_long_parameter_number_{i:02d}" for i in range(18)] + ["lr", "hidden"]
PARAMETERS = {name: {"low": 0.0, "high": 1.0} for name in NAMES}


def objective(trial):
    values = {name: trial.suggest_float(name, 0.0, 1.0) for name in NAMES}
    return 10 * values["hidden"] + 5 * values["lr"] + 0.01 * sum(values.values())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    directory = tmp_path_factory.mktemp("parallel")
    config = load_config(write_config(directory, algorithm="random", max_trials=40, parameters=PARAMETERS))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=2))
    study.optimize(objective, n_trials=40)
    return directory, config, study.trials


def test_twenty_parameters_render_a_png_with_the_most_important_axes_and_a_note(sweep):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory, config, trials = sweep
    objectives = config.objective
    ctx = ReportContext(config, trials, objectives, in_memory_study(trials, objectives))
    axes = parallel_png(ctx)
    try:
        labels = [label.get_text() for label in axes.get_xticklabels()]
        assert len(labels) == MAX_AXES + 1, labels  # the objective, then one axis per parameter shown
        assert labels[1:3] == ["hidden", "lr"], labels  # the most important first
        assert all(len(label) <= 16 for label in labels), labels
        notes = [text.get_text() for text in axes.figure.texts]
        (note,) = [text for text in notes if text.startswith("Not shown")]
        hidden = [name for name in NAMES if short_label(name) not in labels]
        assert len(hidden) == len(NAMES) - MAX_AXES
        assert all(name in note for name in hidden), note
        width, _ = axes.figure.get_size_inches()
        assert width >= 1.2 * (MAX_AXES + 1), width
    finally:
        plt.close(axes.figure)

    report = build_report(config, trials, directory / "out")
    assert not report.problems, report.problems
    path = directory / "out" / "parallel.png"
    assert path in report.files and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_few_parameters_are_all_shown_without_a_note(tmp_path):
    config = load_config(write_config(tmp_path, parameters={"x": [1, 2, 3], "y": [10, 20]}))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: t.suggest_int("x", 1, 3) + t.suggest_int("y", 10, 20), n_trials=6)
    objectives = config.objective
    ctx = ReportContext(config, study.trials, objectives, in_memory_study(study.trials, objectives))
    axes = parallel_png(ctx)
    assert [label.get_text() for label in axes.get_xticklabels()][1:] in (["x", "y"], ["y", "x"])
    assert not axes.figure.texts


def test_long_names_keep_both_ends():
    assert short_label("lr") == "lr"
    assert short_label("a_rather_long_parameter_number_07") == "a_rathe…umber_07"
