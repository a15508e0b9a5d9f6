"""`refine` in process: the advice from a sweep's trials and the config it writes, loaded back
with the real loader. Real SQLite Optuna storage, no MLflow, no trial processes."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml

from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy
from mlflow_sweeper.errors import ConfigError, NoSuchSweep, UsageError
from mlflow_sweeper.refine import advise, next_sweep_name, refine_sweep
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.storages import open_optuna_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def write(tmp_path, name="sweep.yaml", **keys):
    data = {
        "experiment": "exp",
        "sweep_name": "coarse",
        "command": "python train.py",
        "algorithm": "tpe",
        "seed": 0,
        "max_trials": 24,
        "parameters": {"x": {"low": 0.0, "high": 1.0}, "noise": {"low": 0.0, "high": 1.0}, "tag": "a"},
        "spec": {"metric": "score", "direction": "maximize"},
    }
    data.update(keys)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_sweep(config, objective):
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), "agent-1")
    study.create_or_find()
    while (work := study.claim()) is not None:
        study.complete(work, objective(work.params))
    return study


def test_best_on_a_bound_widens_it_and_a_negligible_parameter_is_fixed(tmp_path):
    config = load_config(write(tmp_path))
    run_sweep(config, lambda p: p["x"])  # best at x = 1, the upper bound; noise does nothing
    path, advice, _ = refine_sweep(config)
    by_name = {c.name: c for c in advice.changes}
    assert by_name["x"].kind == "widen" and by_name["x"].spec["high"] > 1.0
    assert by_name["x"].spec["low"] > 0.0  # and narrowed from below, around the best quarter
    assert by_name["noise"].kind == "fix"
    text = path.read_text()
    assert "# x: moved from [0, 1]" in text and "upper bound 1" in text  # past one bound, narrowed below
    assert "# noise: fixed at the best trial's value" in text
    refined = load_config(path)  # the real loader: a valid config
    assert refined.sweep_name == "coarse-refined"
    assert [s.describe() for s in refined.warm_start] == [{"sweep": "exp/coarse"}]
    assert refined.space.axes["x"].high == by_name["x"].spec["high"]
    assert refined.space.fixed["noise"] == advice.best.params["noise"]
    assert refined.optuna_storage == config.optuna_storage  # the same storages: the source is found


def branin(x1, x2):
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


@pytest.mark.parametrize("seed", range(5))
def test_a_parameter_that_does_nothing_is_fixed_after_a_small_sweep_but_one_that_matters_is_not(
    tmp_path, seed
):
    """On 24 trials a forest still gives a parameter that does nothing some 5 % of the importance;
    its values telling better trials from worse no better than chance fixes it all the same."""
    parameters = {"lr": {"low": 1e-5, "high": 1.0, "log": True}, "unused": {"low": 0.0, "high": 1.0}}
    config = load_config(write(tmp_path, parameters=parameters, seed=seed, max_trials=24))
    run_sweep(config, lambda p: -((math.log10(p["lr"]) + 2.5) ** 2))
    path, advice, _ = refine_sweep(config)
    changes = {c.name: c for c in advice.changes}
    assert changes["lr"].kind != "fix"
    assert changes["unused"].kind == "fix", changes["unused"].why
    assert "no better than chance (p = " in path.read_text()


@pytest.mark.parametrize("seed", range(5))
def test_parameters_that_matter_are_not_fixed_on_branin(tmp_path, seed):
    """Both of Branin's parameters matter; 30 trials of TPE leave some of its regions unexplored,
    which must not read as a parameter doing nothing (fixing one loses the warm start of the next
    sweep: only results with that exact value fit)."""
    parameters = {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}}
    spec = {"metric": "y", "direction": "minimize"}
    config = load_config(write(tmp_path, parameters=parameters, seed=seed, max_trials=30, spec=spec))
    run_sweep(config, lambda p: branin(p["x1"], p["x2"]))
    assert all(c.kind != "fix" for c in advise(config, run_sweep_trials(config)).changes)


def test_a_grid_whose_best_uses_its_largest_value_gets_the_next_one(tmp_path):
    config = load_config(
        write(tmp_path, algorithm="grid", max_trials=None, parameters={"x": [1, 2, 3], "y": [10, 20]})
    )
    run_sweep(config, lambda p: p["x"] - p["y"])  # best x = 3 (largest), y = 10 (smallest)
    path, advice, _ = refine_sweep(config, tmp_path / "next.yaml")
    refined = load_config(path)
    assert refined.space.axes["x"].values == (1, 2, 3, 4)
    assert refined.space.axes["y"].values == (0, 10, 20)
    assert "# x: widened with 4" in path.read_text()


def test_narrowed_around_the_best_quarter(tmp_path):
    config = load_config(write(tmp_path, parameters={"x": {"low": -4.0, "high": 4.0}}, max_trials=30))
    run_sweep(config, lambda p: -((p["x"] - 0.5) ** 2))
    advice = advise(config, run_sweep_trials(config))
    (x,) = advice.changes
    assert x.kind == "narrow"
    assert -4.0 < x.spec["low"] < 0.5 < x.spec["high"] < 4.0


def test_an_optimum_just_inside_a_bound_is_narrowed_around_not_widened_past(tmp_path):
    """The top quarter of a 30-trial sweep often reaches a bound the optimum lies inside of; only
    the best trial on the bound (within EDGE of the width) moves it, so the next sweep is not
    spent past it."""
    config = load_config(write(tmp_path, parameters={"x": {"low": 0.0, "high": 1.0}}, max_trials=30))
    run_sweep(config, lambda p: -((p["x"] - 0.93) ** 2))  # maximize: the optimum 7 % inside
    advice = advise(config, run_sweep_trials(config))
    assert max(t.params["x"] for t in advice.top) > 1.0 - 0.05  # the top quarter reaches the bound
    (x,) = advice.changes
    assert x.kind == "narrow" and x.spec["high"] <= 1.0 and x.spec["low"] < 0.93 < x.spec["high"]


def run_sweep_trials(config):
    storage = open_optuna_storage(config.optuna_storage)
    return storage.get_all_trials(storage.get_study_id_from_name(config.identity))


def test_refine_of_a_sweep_that_does_not_exist_is_exit_2(tmp_path):
    config = load_config(write(tmp_path))
    with pytest.raises(NoSuchSweep) as caught:
        refine_sweep(config)
    assert caught.value.exit_code == 2
    assert not (tmp_path / "sweep-refined.yaml").exists()


def test_refined_names():
    assert next_sweep_name("lr") == "lr-refined"
    assert next_sweep_name("lr-refined") == "lr-refined2"
    assert next_sweep_name("lr-refined2") == "lr-refined3"


def test_fail_fast_ignores_warm_started_results():
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from mlflow_sweeper.coordination.fail_fast import fail_fast_reason
    from mlflow_sweeper.coordination.names import REASON, SLOT

    dist = {"x": FloatDistribution(0, 1)}
    warm = [
        create_trial(params={"x": 0.5}, distributions=dist, value=1.0, user_attrs={"warm_start": "sweep:e/s"})
        for _ in range(3)
    ]
    failed = [
        create_trial(
            state=TrialState.FAIL,
            params={"x": 0.1},
            distributions=dist,
            system_attrs={SLOT: i},
            user_attrs={REASON: "the run failed"},
        )
        for i in range(3)
    ]
    for number, trial in enumerate([*warm, *failed]):
        trial.number = number
    assert fail_fast_reason([*warm, *failed], 3) is not None


def test_the_refined_config_runs_warm_started_from_the_first_sweep(tmp_path):
    """The refined sweep, run in process through the same steps as an agent: the earlier results
    that fit enter first (as the agent's warm start does), then only new trials use the budget."""
    from mlflow_sweeper.warmstart.collect import EarlierResult, prepare
    from mlflow_sweeper.warmstart.entering import enter

    config = load_config(write(tmp_path, max_trials=12))
    first = run_sweep(config, lambda p: p["x"] - abs(p["noise"] - 0.5) / 100)
    path, advice, _ = refine_sweep(config)
    refined = load_config(path)
    earlier = [
        EarlierResult(f"run-{t.number}", "sweep:exp/coarse", {**t.params, "tag": "a"}, {"score": t.value})
        for t in first.trials()
    ]
    warm = prepare(refined, earlier, on_grid=False)
    assert len(warm.trials) > 0 and len(warm.trials) + warm.misfits == 12
    study = SweepStudy(open_optuna_storage(refined.optuna_storage), refined, PointSource(refined), "agent-2")
    assert study.create_or_find()
    enter(study.store, study.study_id, study.source, warm)
    new = 0
    while (work := study.claim()) is not None:
        study.complete(work, work.params["x"])
        new += 1
    assert new == refined.max_trials == 12
    trials = study.trials()
    assert len(trials) == 12 + len(warm.trials)
    assert study.progress().complete == 12  # the earlier results use none of the budget
    assert study.is_complete()


def test_an_earlier_sweep_source_deleted_since_is_left_out_of_the_refined_config(tmp_path):
    """One still in the storage stays (it may hold results the new space fits and this sweep's did
    not); one deleted would make the refined config refuse to run (no such sweep: exit 2)."""
    sources = [{"sweep": "exp/gone"}, {"sweep": "exp/kept"}, {"runs": "metrics.score > 0"}]
    run_sweep(load_config(write(tmp_path, name="kept.yaml", sweep_name="kept", max_trials=2)), lambda p: 0.0)
    config = load_config(write(tmp_path, max_trials=8, warm_start=sources))
    run_sweep(config, lambda p: p["x"])
    path, *_ = refine_sweep(config)
    assert [s.describe() for s in load_config(path).warm_start] == [
        {"sweep": "exp/kept"}, {"runs": "metrics.score > 0"}, {"sweep": "exp/coarse"},
    ]  # fmt: skip


def test_values_from_the_environment_stay_references_in_the_refined_config(tmp_path, monkeypatch):
    """The follow-up config is read again by an agent with the same environment: a secret is
    written as the `${VAR}` it came from, never as its value."""
    monkeypatch.setenv("REFINE_TOKEN", "Tok3n-secret")
    monkeypatch.setenv("REFINE_DIR", str(tmp_path / "work"))
    (tmp_path / "train.py").write_text("")
    path = write(
        tmp_path,
        command="python train.py --token ${REFINE_TOKEN}",
        parameters={
            "x": {"low": 0.0, "high": 1.0},
            "key": "${REFINE_TOKEN}",
            "tag": ["a", "b-${REFINE_TOKEN}"],
        },
        output_dir="${REFINE_DIR}/sweeps",
        warm_start=[{"runs": "params.key != '${REFINE_TOKEN}'", "experiment": "older"}],
    )
    config = load_config(path)
    # the filter searches with the value; it is recorded (Optuna attrs, labels) as it shows
    (source,) = config.warm_start
    assert source.runs == "params.key != 'Tok3n-secret'"
    assert source.label == "runs:older:params.key != '***'"
    assert source.describe() == {"runs": "params.key != '***'", "experiment": "older"}
    run_sweep(config, lambda p: p["x"])
    out = tmp_path / "elsewhere" / "refined.yaml"
    out.parent.mkdir()
    refined_path, *_ = refine_sweep(config, out)
    text = refined_path.read_text()
    assert "Tok3n-secret" not in text and str(tmp_path / "work") not in text
    assert "${REFINE_TOKEN}" in text and "${REFINE_DIR}/sweeps" in text
    refined = load_config(refined_path)
    assert refined.written["warm_start"][0]["runs"] == "params.key != '${REFINE_TOKEN}'"  # as written
    # its file made absolute (the refined config lies elsewhere), its reference kept
    assert refined.command == f"python {tmp_path.resolve() / 'train.py'} --token Tok3n-secret"
    assert refined.revealed({"key": "***"}) == {"key": "Tok3n-secret"}


def test_strings_that_read_as_numbers_stay_strings_in_the_refined_config(tmp_path):
    path = write(tmp_path)
    text = path.read_text().replace("tag: a", "tag: '5e2'\n  mode: ['1e-3', 'null']")
    path.write_text(text)
    config = load_config(path)
    assert config.space.fixed["tag"] == "5e2" and config.space.axes["mode"].values == ("1e-3", "null")
    run_sweep(config, lambda p: p["x"])
    refined = load_config(refine_sweep(config)[0])
    mode = refined.space.axes.get("mode")
    kept = mode.values if mode is not None else (refined.space.fixed["mode"],)
    assert all(isinstance(v, str) for v in kept) and set(kept) <= {"1e-3", "null"}
    assert refined.space.fixed["tag"] == "5e2"


def test_refine_never_reuses_a_sweep_name_and_keeps_the_command_working_from_elsewhere(tmp_path):
    (tmp_path / "train.py").write_text("")
    config = load_config(write(tmp_path, command="python train.py --fast"))
    run_sweep(config, lambda p: p["x"])
    first, *_ = refine_sweep(config)
    study = run_sweep(load_config(first), lambda p: p["x"])  # the refined sweep exists now
    # The MLflow store its agents recorded (none named in the config): the new sweep's warm start
    # reads its runs there, wherever the refined config lies.
    recorded = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    coarse = study.store.get_study_id_from_name(config.identity)
    study.store.set_study_user_attr(coarse, "mlflow_tracking_uri", recorded)
    out = tmp_path / "elsewhere" / "again.yaml"  # a folder that does not exist yet
    again = load_config(refine_sweep(config, out)[0])
    assert again.sweep_name == "coarse-refined2"
    assert again.command == f"python {tmp_path.resolve() / 'train.py'} --fast"
    assert again.mlflow_storage == recorded


def test_a_refined_config_written_elsewhere_keeps_its_project(tmp_path):
    """An entry point's project is the config's folder by default: a refined config written in
    another folder names that project, not its own folder."""
    path = write(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["command"]
    data["entry_point"] = "main"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(path)
    run_sweep(config, lambda p: p["x"])
    again = load_config(refine_sweep(config, tmp_path / "elsewhere" / "next.yaml")[0])
    assert again.project == str(tmp_path.resolve())
    assert again.entry_point == "main"


def test_refine_will_not_overwrite_its_config_or_write_where_it_cannot(tmp_path):
    path = write(tmp_path)
    config = load_config(path)
    run_sweep(config, lambda p: p["x"])
    before = path.read_text()
    with pytest.raises(UsageError, match="is the config being refined") as caught:
        refine_sweep(config, tmp_path / "." / "sweep.yaml")
    assert caught.value.exit_code == 2 and path.read_text() == before
    with pytest.raises(UsageError, match="cannot write the refined config") as caught:
        refine_sweep(config, path / "next.yaml")  # under a file, not a folder
    assert caught.value.exit_code == 2 and str(caught.value).endswith(f"{path} is a file, not a folder")
    other = tmp_path / "notes.yaml"  # any file there already, maybe another sweep's config
    other.write_text("# notes\n")
    with pytest.raises(UsageError, match="exists already") as caught:
        refine_sweep(config, other)
    assert caught.value.exit_code == 2 and other.read_text() == "# notes\n"


def test_refine_of_a_sweep_without_an_objective_is_exit_2_naming_spec(tmp_path):
    path = write(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["spec"]
    data["algorithm"] = "random"  # tpe itself needs spec
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="refine ranks trials by the objective") as caught:
        refine_sweep(load_config(path))
    assert caught.value.exit_code == 2 and "spec" in str(caught.value)


def test_a_widened_low_bound_stays_where_its_range_may_go_and_keeps_its_step(tmp_path):
    """Snapping a widened bound to whole numbers or a step must not take a log range to 0 or a
    non-negative one below it; an int range keeps its step; each refined config loads."""
    parameters = {
        "n": {"low": 1, "high": 64, "log": True, "type": "int"},
        "s": {"low": 0.1, "high": 0.9, "step": 0.2},
        "k": {"low": 1, "high": 9, "step": 2, "type": "int"},
    }
    config = load_config(write(tmp_path, parameters=parameters, max_trials=30))
    # best on every low bound; each parameter matters alike (s adding at most 0.8 to n's 63 would
    # have next to no importance, and be fixed)
    run_sweep(config, lambda p: -math.log2(p["n"]) - 5 * p["s"] - p["k"] / 2)
    path, advice, _ = refine_sweep(config)
    refined = load_config(path).space.axes
    assert refined["n"].low == 1 and refined["n"].log
    assert refined["s"].low == 0.1 and refined["s"].step == 0.2  # 0.1 - 0.2 would be below 0
    assert refined["k"].low == 1 and refined["k"].step == 2
    assert all(c.kind in ("widen", "narrow", "keep") for c in advice.changes)


def test_a_sensitivity_sweeps_base_follows_the_refined_space(tmp_path):
    parameters = {"x": {"low": 0.0, "high": 10.0}, "noise": {"low": 0.0, "high": 1.0}}
    config = load_config(
        write(tmp_path, algorithm="sensitivity", max_trials=None, points=9, base={"x": 9.0, "noise": 0.5},
              parameters=parameters)
    )  # fmt: skip
    run_sweep(config, lambda p: -abs(p["x"] - 2.0))  # best near x = 2: narrowed away from the base 9
    path, advice, _ = refine_sweep(config)
    changes = {c.name: c for c in advice.changes}
    refined = load_config(path)  # valid: no base value outside its range, none for a fixed one
    text = path.read_text()
    if changes["noise"].kind == "fix":
        assert "noise" not in (refined.base or {}) and "# base.noise left out" in text
    assert changes["x"].spec["high"] < 9.0 and refined.base["x"] == changes["x"].spec["high"]
    assert "# base.x: was 9.0, outside its new range" in text


def test_refine_run_again_never_overwrites_an_earlier_refined_config(tmp_path):
    config = load_config(write(tmp_path))
    run_sweep(config, lambda p: p["x"])
    first, *_ = refine_sweep(config)
    kept = first.read_text()
    second, *_ = refine_sweep(config)
    assert first.name == "sweep-refined.yaml" and second.name == "sweep-refined2.yaml"
    assert first.read_text() == kept


def test_a_list_that_grows_by_a_ratio_is_widened_by_it(tmp_path):
    """1, 2, 4 grows by a ratio: next 8 (not 6); 1, 2, 3 by a step: next 4."""
    parameters = {"x": [1, 2, 4], "y": [1, 2, 3], "z": [0.01, 0.1, 1.0]}
    config = load_config(write(tmp_path, algorithm="grid", max_trials=None, parameters=parameters))
    run_sweep(config, lambda p: p["x"] + p["y"] + p["z"])  # best on every largest value
    refined = load_config(refine_sweep(config)[0]).space.axes
    assert refined["x"].values[-2:] == (4, 8) and 6 not in refined["x"].values
    assert refined["y"].values[-2:] == (3, 4)
    assert refined["z"].values[-2:] == (1.0, 10.0)
    assert 0 not in refined["x"].values  # none below 1 in a list of whole numbers grown by a ratio


def test_a_list_whose_best_value_is_its_smallest_with_none_below_says_why_it_is_kept(tmp_path):
    """0.1, 0.3 spaced by 0.2 has no value below 0.1 that stays above 0: kept, saying so, not
    'inner values'."""
    parameters = {"x": [0.1, 0.3], "y": [1, 2]}
    config = load_config(write(tmp_path, algorithm="grid", max_trials=None, parameters=parameters))
    run_sweep(config, lambda p: -p["x"] + p["y"])  # best at x = 0.1, the smallest
    kept = next(c for c in advise(config, run_sweep_trials(config)).changes if c.name == "x")
    assert kept.kind == "keep" and "smallest value 0.1" in kept.why and "inner" not in kept.why


def test_the_chance_test_needs_trials_enough_for_its_parameters():
    """Eight trials per parameter: with fewer, a parameter that matters often looks like chance
    (6-D Hartmann after 30 trials), and one that does nothing is left to its importance alone."""
    import random

    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    from mlflow_sweeper.search.chance import rank_tests

    rng = random.Random(0)
    distributions = {"x": FloatDistribution(0, 1), "batch": CategoricalDistribution([16, 32, 64])}

    def trials(count):
        made = []
        for _ in range(count):
            params = {"x": rng.random(), "batch": rng.choice([16, 32, 64])}
            value = (params["x"] - 0.3) ** 2
            made.append(create_trial(params=params, distributions=distributions, value=value))
        return made

    names = ["x", "batch"]
    few = rank_tests(trials(15), names, value=lambda t: t.value)
    assert not few.conclusive and not few.no_difference("batch")  # too few to say "no difference"
    assert few.difference("x")  # but enough to see one
    tests = rank_tests(trials(40), names, value=lambda t: t.value)
    assert tests.no_difference("batch") and not tests.no_difference("x")
    assert tests.difference("x") and not tests.difference("batch")


def test_the_reports_next_sweep_names_the_sweep_refine_writes(tmp_path):
    """Once the first follow-up ran, refine names the next one `-refined2`: the report says so."""
    from mlflow_sweeper.refine import follow_up_name
    from mlflow_sweeper.report import build_report
    from mlflow_sweeper.report.charts import CHARTS

    config = load_config(write(tmp_path))
    trials = run_sweep(config, lambda p: p["x"]).trials()
    assert follow_up_name(config) == "coarse-refined"
    path, *_ = refine_sweep(config)
    run_sweep(load_config(path), lambda p: p["x"])  # the follow-up ran: its name is taken
    assert follow_up_name(config) == "coarse-refined2"
    next_chart = tuple(c for c in CHARTS if c.key == "next")
    build_report(config, trials, tmp_path / "report", charts=next_chart)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "writes 'coarse-refined2'" in page and "writes 'coarse-refined'," not in page


def test_a_weak_parameter_whose_best_sits_on_a_bound_is_widened_not_fixed(tmp_path):
    """Beside lr's wide effect w has under 2 % of the importance, yet the best trial sits on w's
    lower bound: the range is widened past it (SPEC), not fixed there."""
    parameters = {"lr": [1e-4, 1e-3, 1e-2, 1e-1, 1.0], "w": {"low": 0.1, "high": 0.5, "step": 0.1}}
    spec = {"metric": "loss", "direction": "minimize"}
    config = load_config(write(tmp_path, algorithm="grid", max_trials=None, parameters=parameters, spec=spec))
    run_sweep(config, lambda p: 100 * (math.log10(p["lr"]) + 2) ** 2 + p["w"])  # best: lr 1e-2, w 0.1
    advice = advise(config, run_sweep_trials(config))
    changes = {c.name: c for c in advice.changes}
    assert advice.best.params == {"lr": 1e-2, "w": 0.1}
    assert changes["w"].kind == "widen" and "lower bound 0.1" in changes["w"].why, changes["w"].why


@pytest.mark.parametrize("seed", range(3))
def test_with_several_objectives_a_parameter_that_drives_the_second_is_not_fixed(tmp_path, seed):
    """n does nothing to the loss but is the whole of the size: judged on every objective, it is
    kept; one that does nothing to either is fixed."""
    parameters = {
        "x": {"low": 0.0, "high": 1.0},
        "n": {"low": 1, "high": 9, "type": "int"},
        "unused": {"low": 0.0, "high": 1.0},
    }
    spec = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "minimize"}]}
    config = load_config(
        write(tmp_path, algorithm="nsga2", seed=seed, max_trials=40, parameters=parameters, spec=spec)
    )
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), "agent-1")
    study.create_or_find()
    while (work := study.claim()) is not None:
        study.complete(work, [(work.params["x"] - 0.3) ** 2, work.params["n"]])
    changes = {c.name: c for c in advise(config, run_sweep_trials(config)).changes}
    assert changes["n"].kind != "fix" and changes["x"].kind != "fix", changes


def test_a_refined_sensitivity_sweep_does_not_run_its_base_point_again(tmp_path):
    """A base left to its default is a range's midpoint; the narrowed range's midpoint rounds to
    another point. The refined config writes the base out, so the earlier base point holds it."""
    from mlflow_sweeper.warmstart.collect import EarlierResult, prepare
    from mlflow_sweeper.warmstart.entering import enter

    log_range = {"low": 0.1, "high": 100.0, "log": True}
    parameters = {"x": {"low": 0.0, "high": 1.0}, "y": log_range, "w": [0.2, 0.4]}
    keys = {"algorithm": "sensitivity", "max_trials": None, "points": 5, "parameters": parameters}
    config = load_config(write(tmp_path, **keys, spec={"metric": "loss", "direction": "minimize"}))

    def loss(p):
        return (p["x"] - 0.5) ** 2 + (math.log10(p["y"]) - 0.5) ** 2 + p["w"]

    first = run_sweep(config, loss)
    path, *_ = refine_sweep(config)
    refined = load_config(path)
    assert {k: refined.base[k] for k in ("x", "y")} == {"x": 0.5, "y": math.sqrt(0.1 * 100.0)}
    earlier = [
        EarlierResult(f"run-{t.number}", "sweep:exp/coarse", {**t.params, "tag": "a"}, {"loss": t.value})
        for t in first.trials()
    ]
    study = SweepStudy(open_optuna_storage(refined.optuna_storage), refined, PointSource(refined), "agent-2")
    assert study.create_or_find()
    enter(study.store, study.study_id, study.source, prepare(refined, earlier, on_grid=True))
    ran = []
    while (work := study.claim()) is not None:
        ran.append(work.params)
        study.complete(work, loss({**refined.space.fixed, **work.params}))
    assert ran and refined.base not in ran  # the earlier base point holds it


def test_refine_names_a_sweep_no_config_beside_it_names_yet_and_its_file_after_it(tmp_path):
    """coarse -> coarse-refined (run); refine coarse again -> coarse-refined2 (written, not run);
    refine coarse-refined -> coarse-refined3, not the coarse-refined2 another file holds. A config
    named as its sweep gets a file named as the new sweep."""
    config = load_config(write(tmp_path, name="coarse.yaml"))
    run_sweep(config, lambda p: p["x"])
    first, *_ = refine_sweep(config)
    assert first.name == "coarse-refined.yaml" and load_config(first).sweep_name == "coarse-refined"
    refined = load_config(first)
    run_sweep(refined, lambda p: p["x"])
    second, *_ = refine_sweep(config)
    assert second.name == "coarse-refined2.yaml" and load_config(second).sweep_name == "coarse-refined2"
    third, *_ = refine_sweep(refined)
    assert third.name == "coarse-refined3.yaml" and load_config(third).sweep_name == "coarse-refined3"
    other = tmp_path / "other"
    fourth, *_ = refine_sweep(refined, other / "next.yaml")  # a folder of its own: its files count too
    assert load_config(fourth).sweep_name == "coarse-refined4"


def test_a_count_whose_best_sits_on_1_is_not_widened_to_0(tmp_path):
    """epochs in [1, 4] with the best at 1: 0 epochs is no training at all, so the bound stays (a
    count starting at 3 may go down to 1, never 0)."""
    parameters = {
        "epochs": {"low": 1, "high": 4, "type": "int"},
        "layers": {"low": 3, "high": 9, "type": "int"},
        "x": {"low": 0.2, "high": 1.0},
    }
    config = load_config(write(tmp_path, parameters=parameters, max_trials=30))
    run_sweep(config, lambda p: -p["epochs"] - p["layers"] - 3 * p["x"])  # maximised on every low bound
    path, advice, _ = refine_sweep(config)
    changes = {c.name: c for c in advice.changes}
    refined = load_config(path).space.axes
    assert refined["epochs"].low == 1, changes["epochs"].why
    assert "lower bound 1, kept: a count of 1 or more" in changes["epochs"].why
    assert 1 <= refined["layers"].low < 3 and changes["layers"].kind == "widen"
    assert refined["x"].low >= 0.0


def test_refine_of_a_config_edited_since_its_sweep_ran_is_exit_2_naming_the_change(tmp_path):
    """The ranges refine reasons from must be the ones the trials were drawn from."""
    from mlflow_sweeper.errors import DriftError

    config = load_config(write(tmp_path))
    run_sweep(config, lambda p: p["x"])
    widened = {**PARAMETERS, "x": {"low": 0.0, "high": 2.0}}
    edited = load_config(write(tmp_path, name="edited.yaml", parameters=widened))
    with pytest.raises(DriftError, match=r"differs from the sweep exp/coarse .*x") as raised:
        refine_sweep(edited)
    assert raised.value.exit_code == 2
    assert not list(tmp_path.glob("edited-refined*.yaml"))


PARAMETERS = {"x": {"low": 0.0, "high": 1.0}, "noise": {"low": 0.0, "high": 1.0}, "tag": "a"}


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_a_follow_up_sweep_with_the_seed_of_its_source_does_not_draw_its_points_again(tmp_path, algorithm):
    """A follow-up keeps its source's seed (`refine` copies it; a new sweep_name with `warm_start`
    is the way a changed config is told to go): its slots must not draw the source's points again
    while the sampler is still random. A seed alone still gives the same points under any name."""
    keys = {"algorithm": algorithm, "max_trials": 5}
    source = run_sweep(load_config(write(tmp_path, **keys)), lambda p: p["x"])
    drawn = {(t.params["x"], t.params["noise"]) for t in source.trials()}
    alone_path = write(tmp_path, "alone.yaml", sweep_name="alone", **keys)
    alone = run_sweep(load_config(alone_path), lambda p: p["x"])
    assert {(t.params["x"], t.params["noise"]) for t in alone.trials()} == drawn
    follow_up = write(tmp_path, "next.yaml", sweep_name="next", warm_start=[{"sweep": "exp/coarse"}], **keys)
    again = run_sweep(load_config(follow_up), lambda p: p["x"])
    assert not {(t.params["x"], t.params["noise"]) for t in again.trials()} & drawn


def test_refine_with_nothing_to_change_says_why_each_parameter_was_kept(tmp_path):
    from click.testing import CliRunner

    from mlflow_sweeper.cli import main

    parameters = {"x": [1, 2, 3, 4, 5], "y": ["a", "b"]}
    path = write(tmp_path, algorithm="grid", max_trials=None, parameters=parameters)
    config = load_config(path)
    run_sweep(config, lambda p: -((p["x"] - 3) ** 2) + (p["y"] == "a"))  # best inside every list
    result = CliRunner().invoke(main, ["refine", str(path)])
    assert result.exit_code == 0, result.output
    assert "(0 parameter(s) changed)" in result.output
    assert "  x: kept" in result.output and "  y: kept" in result.output, result.output
