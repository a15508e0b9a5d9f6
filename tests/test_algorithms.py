"""The algorithm registry: every algorithm resolves and samples through a real Optuna study;
unknown names and sampler options are refused at config load; per-slot seeds are independent."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from conftest import run_cli
from test_bad_config import assert_nothing_written, snapshot, the_message

from mlflow_sweeper.cli import main
from mlflow_sweeper.config import load_config, load_configs
from mlflow_sweeper.errors import ConfigError
from mlflow_sweeper.search.algorithms import (
    ALGORITHMS,
    PointSource,
    UnknownAlgorithm,
    algorithm_class,
    slot_seed,
)

HAS_TORCH = importlib.util.find_spec("torch") is not None
MIXED = {
    "x": {"low": -2.0, "high": 2.0},
    "n": {"low": 1, "high": 8, "type": "int"},
    "lr": {"low": 1e-4, "high": 1e-1, "log": True},
    "opt": ["adam", "sgd"],
    "fixed": 7,
}
GRIDDABLE = {"x": [1, 2, 3], "n": {"low": 1, "high": 4, "type": "int"}, "fixed": "a"}


def write(tmp_path: Path, name: str = "sweep.yaml", **keys) -> Path:
    config = {
        "experiment": "exp",
        "sweep_name": "s1",
        "command": "python train.py",
        "parameters": MIXED,
        "mlflow_storage": "sqlite:///mlflow.db",
        "spec": {"direction": "minimize", "metric": "loss"},
        **keys,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def objective(params: dict) -> float:
    x = float(params.get("x", 0.0))
    return (x - 0.5) ** 2 + float(params.get("n", 0)) / 10 + (0.1 if params.get("opt") == "sgd" else 0.0)


def run_in_memory(source: PointSource, trials: int) -> optuna.Study:
    """Slots asked as the coordination asks them: a fixed point, or the slot's own sampler."""
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    for slot in range(trials):
        point = source.fixed_point(slot)
        if point is not None:
            study.enqueue_trial(point)
            trial = study.ask(source.distributions_for(point))
            assert trial.params == point
        else:
            study.sampler = source.sampler(slot)
            trial = study.ask(source.distributions)
        study.tell(trial, objective(trial.params))
    return study


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_resolves_and_samples_through_a_real_study(name, tmp_path):
    if name == "gp" and not HAS_TORCH:
        pytest.skip("torch is not installed (the [gp] extra); test_gp_without_torch covers this case")
    grid = name == "grid"
    config = load_config(
        write(tmp_path, algorithm=name, parameters=GRIDDABLE if grid else MIXED, max_trials=12, seed=3)
    )
    source = PointSource(config)
    assert isinstance(source.strategy, algorithm_class(name)) and source.strategy.name == name
    # sensitivity derives its budget from its plan (max_trials does not apply to it)
    assert source.budget == (len(source.strategy.plan) if name == "sensitivity" else 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental samplers and independent-sampling notes
        study = run_in_memory(source, source.budget)
    trials = study.trials
    assert len(trials) == source.budget and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for trial in trials:
        if grid:
            assert trial.params["x"] in (1, 2, 3) and 1 <= trial.params["n"] <= 4
            continue
        assert -2.0 <= trial.params["x"] <= 2.0
        assert 1 <= trial.params["n"] <= 8 and isinstance(trial.params["n"], int)
        assert 1e-4 <= trial.params["lr"] <= 1e-1
        assert trial.params["opt"] in ("adam", "sgd")
    if grid:
        assert len({(t.params["x"], t.params["n"]) for t in trials}) == 12  # every point once
    else:
        assert len({t.params["x"] for t in trials}) > 1, "the sampler drew the same point every time"
        if name not in ("random", "sensitivity"):
            assert isinstance(source.sampler(0), type(source.strategy.make_sampler(None, {})))


def test_the_samplers_are_optunas_own():
    expected = {
        "random": optuna.samplers.RandomSampler,
        "tpe": optuna.samplers.TPESampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "qmc": optuna.samplers.QMCSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "nsga3": optuna.samplers.NSGAIIISampler,
    }
    assert {name: cls.sampler_class for name, cls in ALGORITHMS.items() if cls.sampler_class} == expected
    assert ALGORITHMS["grid"].sampler_class is None and not ALGORITHMS["grid"].needs_max_trials


def test_random_over_a_finite_space_is_a_permutation_without_a_sampler(tmp_path):
    source = PointSource(
        load_config(write(tmp_path, algorithm="random", parameters=GRIDDABLE, max_trials=50))
    )
    assert source.budget == 12  # capped at the number of points
    points = [source.fixed_point(slot) for slot in range(12)]
    assert len({(p["x"], p["n"]) for p in points}) == 12


def test_unknown_algorithm_is_refused_by_the_registry_and_the_config(tmp_path):
    with pytest.raises(UnknownAlgorithm, match="did you mean 'tpe'"):
        algorithm_class("tpee")
    with pytest.raises(ConfigError, match=r"algorithm: unknown algorithm 'cmaess'.*did you mean 'cmaes'"):
        load_config(write(tmp_path, algorithm="cmaess", max_trials=3))


def test_cmaes_works_out_of_the_base_install():
    """Optuna imports the `cmaes` package lazily: it must come with the base dependencies."""
    assert importlib.util.find_spec("cmaes") is not None
    assert ALGORITHMS["cmaes"].missing_requirement() is None


# ---- sampler_options ---------------------------------------------------------------------------


def test_sampler_options_reach_the_sampler(tmp_path):
    config = load_config(
        write(tmp_path, algorithm="nsga2", max_trials=4, sampler_options={"population_size": 4})
    )
    assert config.sampler_options == {"population_size": 4}
    assert config.fingerprint()["sampler_options"] == {"population_size": 4}
    assert isinstance(PointSource(config).sampler(0), optuna.samplers.NSGAIISampler)


@pytest.mark.parametrize(
    ("algorithm", "options", "key", "fragments"),
    [
        ("tpe", {"n_startup": 5}, "sampler_options.n_startup", ("n_startup_trials", "valid options")),
        ("random", {"foo": 1}, "sampler_options.foo", ("none",)),
        ("grid", {"foo": 1}, "sampler_options.foo", ("none",)),
        ("tpe", {"seed": 1}, "sampler_options.seed", ("top-level 'seed'",)),
        ("nsga2", {"population_size": 1}, "sampler_options", ("NSGAIISampler", "population_size")),
        ("tpe", [1, 2], "sampler_options", ("mapping",)),
        # a value of another type than the sampler declares: "no" would read as true
        ("tpe", {"multivariate": "false"}, "sampler_options.multivariate", ("expected true or false",)),
        ("tpe", {"n_startup_trials": 2.5}, "sampler_options.n_startup_trials", ("expected a whole number",)),
        ("qmc", {"scramble": "no"}, "sampler_options.scramble", ("expected true or false", "'no'")),
        ("cmaes", {"use_separable_cma": "no"}, "sampler_options.use_separable_cma", ("true or false",)),
        ("cmaes", {"sigma0": "abc"}, "sampler_options.sigma0", ("expected a number or null",)),
        # values the sampler only reads when asked for points: found by the rehearsal
        ("nsga2", {"mutation_prob": 2.0}, "sampler_options", ("NSGAIISampler",)),
        # read only once the model runs: the rehearsal cuts the warm-up short to get there
        ("tpe", {"n_ei_candidates": 0}, "sampler_options", ("TPESampler", "asked for points")),
        ("tpe", {"n_startup_trials": 40, "n_ei_candidates": 0}, "sampler_options", ("asked for points",)),
        # a function or a Python object cannot be written in YAML
        ("tpe", {"gamma": 0.25}, "sampler_options.gamma", ("Python object", "Callable")),
        ("nsga2", {"crossover": "blx"}, "sampler_options.crossover", ("Python object", "BaseCrossover")),
    ],
)
def test_bad_sampler_options_are_config_errors(algorithm, options, key, fragments, tmp_path):
    space = GRIDDABLE if algorithm == "grid" else MIXED
    path = write(tmp_path, algorithm=algorithm, parameters=space, max_trials=3, sampler_options=options)
    with pytest.raises(ConfigError) as caught:
        load_configs([str(path)], to_run=True)
    message = str(caught.value)
    assert message.startswith(f"{path.resolve()}: {key}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_an_algorithm_that_cannot_search_several_objectives_is_a_config_error(tmp_path):
    metrics = [{"name": "a", "direction": "maximize"}, {"name": "b", "direction": "minimize"}]
    path = write(tmp_path, algorithm="cmaes", max_trials=3, spec={"metrics": metrics})
    with pytest.raises(
        ConfigError, match=r": algorithm: 'cmaes' \(CmaEsSampler\) cannot search 2 objectives"
    ):
        load_configs([str(path)], to_run=True)
    load_configs(
        [str(write(tmp_path, algorithm="nsga2", max_trials=3, spec={"metrics": metrics}))], to_run=True
    )


def test_the_rehearsal_leaves_a_samplers_warnings_to_the_sweep(tmp_path, caplog):
    """A deprecated option: the rehearsal says nothing (an error it finds must be the only line);
    the sweep's own sampler logs the warning once."""
    import logging

    from mlflow_sweeper.search.algorithms import base

    base._WARNED.clear()
    ranges = {"x": {"low": 0.0, "high": 1.0}, "y": {"low": 0.0, "high": 1.0}}
    path = write(
        tmp_path, algorithm="cmaes", max_trials=3, parameters=ranges, sampler_options={"sigma0": 0.5}
    )
    with caplog.at_level(logging.WARNING):
        (config,) = load_configs([str(path)], to_run=True)
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()], caplog.text
    PointSource(config).sampler(0)
    assert [r for r in caplog.records if "`sigma0` has been deprecated" in r.getMessage()], caplog.text


def test_only_a_sweep_runs_the_sampler_status_and_delete_read_the_config_alone(tmp_path, monkeypatch):
    """A sampler option value refused only when the sampler runs, and a gp sweep without
    PyTorch: `sweep` exits 2, while `status` and `delete` (which need no sampler) still work."""
    bad_value = write(
        tmp_path, "bad.yaml", algorithm="tpe", max_trials=3, sampler_options={"n_ei_candidates": 0}
    )
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails, as without the package
    no_torch = write(tmp_path, "gp.yaml", sweep_name="g1", algorithm="gp", max_trials=3)
    monkeypatch.chdir(tmp_path)
    for path in (bad_value, no_torch):
        assert len(load_configs([str(path)])) == 1
        with pytest.raises(ConfigError):
            load_configs([str(path)], to_run=True)
        swept = CliRunner().invoke(main, ["sweep", str(path)], catch_exceptions=True)
        assert swept.exit_code == 2, swept.output
        status = CliRunner().invoke(main, ["status", "--json", str(path)], catch_exceptions=True)
        assert status.exit_code == 0 and '"parent_run_id": null' in status.output, status.output
        deleted = CliRunner().invoke(main, ["delete", "--yes", str(path)], catch_exceptions=True)
        assert deleted.exit_code == 0 and "nothing to delete" in deleted.output, deleted.output
    assert not (tmp_path / "sweeps").exists()  # none of them made a folder for a missing sweep


def test_bad_sampler_option_value_exits_2_from_the_cli_writing_nothing(tmp_path):
    path = write(tmp_path, algorithm="tpe", max_trials=3, sampler_options={"n_startup_trials": "five"})
    before = snapshot(tmp_path)
    result = run_cli("sweep", path, cwd=tmp_path, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output
    assert "sampler_options" in the_message(result.stdout, result.stderr)
    assert_nothing_written(before, snapshot(tmp_path))


def test_unknown_sampler_option_exits_2_from_the_cli_writing_nothing(tmp_path):
    path = write(tmp_path, algorithm="tpe", max_trials=3, sampler_options={"n_startup": 5})
    before = snapshot(tmp_path)
    result = run_cli("sweep", path, cwd=tmp_path, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output
    message = the_message(result.stdout, result.stderr)
    assert "sampler_options.n_startup" in message and "n_startup_trials" in message, message
    assert_nothing_written(before, snapshot(tmp_path))


def test_gp_without_torch_exits_2_naming_the_extra(tmp_path, monkeypatch):
    """A None entry in sys.modules makes `import torch` fail, as it does without the package."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, algorithm="gp", max_trials=3)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["sweep", str(path)], catch_exceptions=True)
    assert result.exit_code == 2, result.output
    message = the_message(result.stdout, result.stderr)
    assert f"{path.resolve()}: algorithm: " in message and "pip install 'mlflow-sweeper[gp]'" in message
    assert_nothing_written(before, snapshot(tmp_path))


# ---- seeds -------------------------------------------------------------------------------------


def first_draws(sampler_of_slot) -> list[tuple[float, float]]:
    """The first point each of slots 0..15 draws on [0, 1]^2."""
    space = {
        "a": optuna.distributions.FloatDistribution(0.0, 1.0),
        "b": optuna.distributions.FloatDistribution(0.0, 1.0),
    }
    draws = []
    for slot in range(16):
        study = optuna.create_study(sampler=sampler_of_slot(slot))
        params = study.ask(space).params
        draws.append((params["a"], params["b"]))
    return draws


@pytest.mark.parametrize("name", ["tpe", "cmaes", "nsga2", "gp"])
def test_each_slots_sampler_gets_what_the_previous_one_learned(name, tmp_path):
    """Each slot's sampler is new (its seed is the slot's) but takes over the previous one's
    search-space caches, and GP's fitted kernels, so it reads only the trials added since instead
    of the whole history. The search-space caches change no point drawn: the points are exactly
    those of samplers that each rescan everything (GP's warm start changes its fit, as in Optuna's
    own sequential use, so for gp the hand-over itself is checked)."""
    if name == "gp" and not HAS_TORCH:
        pytest.skip("torch is not installed (the [gp] extra)")
    from optuna.search_space import IntersectionSearchSpace

    config = load_config(write(tmp_path, algorithm=name, parameters=MIXED, max_trials=24, seed=5))
    source = PointSource(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = run_in_memory(source, 24)
    first, second = source.sampler(24), source.sampler(25)
    caches = [n for n, v in vars(first).items() if isinstance(v, IntersectionSearchSpace)]
    assert caches, f"{name}: no search-space cache found on the sampler"
    assert all(getattr(first, n) is getattr(second, n) for n in caches)
    if name == "gp":
        assert second._gprs_cache_list is not None, "GP's fitted kernels were not handed on"
        assert second._gprs_cache_list is first._gprs_cache_list
        return

    class Unshared(PointSource):
        def sampler(self, slot):
            return self.strategy.sampler_for(slot, dict(self.config.sampler_options))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rescanned = run_in_memory(Unshared(config), 24)
    assert [t.params for t in shared.trials] == [t.params for t in rescanned.trials]


def test_slot_seeds_are_deterministic_distinct_and_none_stays_none():
    assert slot_seed(None, 5) is None
    assert [slot_seed(0, k) for k in range(4)] == [slot_seed(0, k) for k in range(4)]
    assert len({slot_seed(seed, k) for seed in range(4) for k in range(256)}) == 4 * 256
    assert all(0 <= slot_seed(0, k) < 2**32 for k in range(16))


def test_first_draws_of_nearby_slots_are_not_near_identical(tmp_path):
    source = PointSource(load_config(write(tmp_path, algorithm="random", max_trials=16, seed=0)))
    draws = first_draws(source.sampler)
    assert math.dist(draws[0], draws[3]) > 0.05, (draws[0], draws[3])
    closest = min(math.dist(p, q) for p, q in itertools.combinations(draws, 2))
    assert closest > 0.01, f"two slots drew nearly the same first point (distance {closest:.4f})"


def test_the_seed_check_catches_consecutive_integer_seeds():
    """The measure above is sensitive: seeds `seed * 1_000_003 + slot` fail it (slots 0 and 3)."""
    draws = first_draws(lambda slot: optuna.samplers.RandomSampler(seed=slot))
    assert math.dist(draws[0], draws[3]) < 0.05


def test_sampler_warnings_reach_the_user_once_and_experimental_ones_never(caplog):
    import warnings

    qmc, cmaes = ALGORITHMS["qmc"](None, 0), ALGORITHMS["cmaes"](None, 0)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        for slot in range(3):
            qmc.sampler_for(slot, {})
            cmaes.sampler_for(slot, {"sigma0": 0.2})
    assert escaped == [], [str(w.message) for w in escaped]
    deprecations = [r.getMessage() for r in caplog.records if "sigma0" in r.getMessage()]
    assert len(deprecations) <= 1  # once per process: an earlier test may have logged it already
    assert not any("experimental" in r.getMessage() for r in caplog.records)
