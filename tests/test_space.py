"""Fast unit tests of the search space (grid decoding, ranges, random order) and of config loading."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mlflow_sweeper.config import load_config, load_configs
from mlflow_sweeper.search.grid import Grid, Permutation
from mlflow_sweeper.search.space import SearchSpace, parse_axis

# ---- Grid: point n is the n-th tuple of itertools.product ---------------------------------------


@pytest.mark.parametrize(
    "axes",
    [
        {"a": (1,)},
        {"a": (1, 2, 3)},
        {"a": (1, 2), "b": ("x", "y", "z")},
        {"lr": (0.1, 0.01, 0.001), "bs": (16, 32), "opt": ("adam", "sgd", None, True)},
        {"a": (0,), "b": (1, 2, 3, 4, 5), "c": (False, True), "d": ("p",)},
    ],
    ids=["one-value", "one-axis", "two-axes", "three-axes", "singleton-axes"],
)
def test_grid_points_follow_itertools_product(axes):
    grid = Grid(axes)
    expected = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    assert grid.size == len(expected)
    decoded = [grid.point(i) for i in range(grid.size)]
    assert decoded == expected
    assert all(list(point) == list(axes) for point in decoded)  # keys in config order


def test_grid_point_out_of_range_raises():
    grid = Grid({"a": (1, 2), "b": (3, 4, 5)})
    for index in (-1, 6, 100):
        with pytest.raises(IndexError):
            grid.point(index)


def test_grid_is_not_materialised_for_a_large_space():
    axes = {f"p{i}": tuple(range(10)) for i in range(8)}  # 10**8 points
    grid = Grid(axes)
    assert grid.size == 10**8
    assert grid.point(0) == {f"p{i}": 0 for i in range(8)}
    assert grid.point(grid.size - 1) == {f"p{i}": 9 for i in range(8)}
    assert grid.point(12_345_678) == {f"p{i}": int(d) for i, d in enumerate("12345678")}


# ---- ranges ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"low": 1, "high": 4, "type": "int"}, (1, 2, 3, 4)),
        ({"low": 1, "high": 10, "type": "int", "step": 3}, (1, 4, 7, 10)),
        ({"low": 0, "high": 9, "type": "int", "step": 4}, (0, 4, 8)),
        ({"low": -2, "high": 2, "type": "int", "step": 2}, (-2, 0, 2)),
        ({"low": 5, "high": 5, "type": "int"}, (5,)),
    ],
)
def test_stepped_int_range_grid_values(spec, expected):
    axis = parse_axis("n", spec)
    values = axis.grid_values()
    assert values == expected
    assert all(type(v) is int for v in values)
    distribution = axis.distribution()
    assert isinstance(distribution, IntDistribution)
    assert (distribution.low, distribution.high) == (expected[0], expected[-1])


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"low": 0.0, "high": 1.0, "step": 0.25}, (0.0, 0.25, 0.5, 0.75, 1.0)),
        ({"low": 0.1, "high": 0.5, "step": 0.1}, (0.1, 0.2, 0.3, 0.4, 0.5)),
        ({"low": 0.0, "high": 1.0, "step": 0.3}, (0.0, 0.3, 0.6, 0.9)),
        ({"low": 1.0e-3, "high": 5.0e-3, "step": 1.0e-3}, (0.001, 0.002, 0.003, 0.004, 0.005)),
        ({"low": 0, "high": 2, "step": 1}, (0.0, 1.0, 2.0)),
    ],
)
def test_stepped_float_range_grid_values(spec, expected):
    axis = parse_axis("f", spec)
    values = axis.grid_values()
    assert values == expected  # exact: 0.1 + 2 * 0.1 is 0.3, not 0.30000000000000004
    assert all(isinstance(v, float) for v in values)
    assert isinstance(axis.distribution(), FloatDistribution)


def test_continuous_and_log_ranges_have_no_grid():
    space = SearchSpace.parse(
        {
            "dropout": {"low": 0.0, "high": 0.5},
            "wd": {"low": 1.0e-6, "high": 1.0e-2, "log": True},
            "opt": ["adam", "sgd"],
        }
    )
    assert space.grid_axes() is None
    distributions = space.distributions()
    assert distributions["dropout"] == FloatDistribution(0.0, 0.5)
    assert distributions["wd"] == FloatDistribution(1.0e-6, 1.0e-2, log=True)
    assert distributions["opt"] == CategoricalDistribution(["adam", "sgd"])


def test_lists_mappings_and_scalars():
    space = SearchSpace.parse(
        {
            "lr": [0.1, 0.01],
            "optimizer": {"values": ["adam", "sgd"]},
            "layers": {"low": 1, "high": 3, "type": "int"},
            "seed": 0,
            "name": "run",
            "flag": True,
        }
    )
    assert list(space.axes) == ["lr", "optimizer", "layers"]
    assert space.fixed == {"seed": 0, "name": "run", "flag": True}
    assert space.grid_axes() == {"lr": (0.1, 0.01), "optimizer": ("adam", "sgd"), "layers": (1, 2, 3)}
    assert space.distributions()["layers"] == IntDistribution(1, 3)


# ---- Permutation: a seeded bijection on range(size) ---------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 16, 17, 100, 1000, 1023, 1024, 1025, 4096, 4097])
@pytest.mark.parametrize("seed", [0, 1, None, 123456789])
def test_permutation_is_a_bijection(size, seed):
    permutation = Permutation(size, seed)
    image = [permutation[i] for i in range(size)]
    assert sorted(image) == list(range(size))


def test_permutation_is_deterministic_and_differs_by_seed():
    for size in (1000, 4097):
        first = [Permutation(size, 0)[i] for i in range(size)]
        again = [Permutation(size, 0)[i] for i in range(size)]
        other = [Permutation(size, 1)[i] for i in range(size)]
        assert first == again
        assert first != other
        assert first != list(range(size))  # actually shuffled
        assert other != list(range(size))
    orders = {tuple(Permutation(3, seed)[i] for i in range(3)) for seed in range(40)}
    assert len(orders) > 1  # even a tiny space is shuffled differently by different seeds


def test_permutation_out_of_range_raises():
    permutation = Permutation(10, 0)
    for index in (-1, 10, 11):
        with pytest.raises(IndexError):
            permutation[index]


# ---- load_config: valid configs ---------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


MINIMAL = """\
experiment: exp
sweep_name: s1
command: python train.py
parameters:
  x: [1, 2]
"""


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config_dir = tmp_path / "conf"
    path = _write(config_dir / "sweep.yaml", MINIMAL)
    config = load_config(path)
    assert config.identity == "exp/s1"
    assert config.experiment == "exp" and config.sweep_name == "s1"
    assert config.algorithm == "grid"
    assert config.max_trials is None
    assert config.seed is None
    assert config.command == "python train.py"
    assert config.entry_point is None
    assert config.mlflow_storage is None
    assert config.output_dir == config_dir.resolve() / "sweeps"
    assert config.optuna_storage == f"sqlite:///{config_dir.resolve() / 'sweeps' / 'optuna.db'}"
    assert config.objective.direction == "minimize"
    assert config.objective.metric is None
    assert config.path == path.resolve()
    assert config.space.grid_axes() == {"x": (1, 2)}


def test_entry_point_defaults(tmp_path):
    path = _write(
        tmp_path / "sweep.yaml",
        "experiment: exp\nsweep_name: s1\nentry_point: train\nparameters: {x: [1]}\n"
        "spec: {metric: val/accuracy}\n",
    )
    config = load_config(path)
    assert config.entry_point == "train"
    assert config.command is None
    assert config.project == str(tmp_path.resolve())
    assert config.env_manager == "local"
    assert config.backend == "local"
    assert config.backend_config == {}
    assert config.objective.direction == "minimize"
    assert config.objective.metric == "val/accuracy"


def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config_dir = tmp_path / "configs" / "team"
    _write(config_dir / "backend.json", json.dumps({"cluster": "c1"}))
    path = _write(
        config_dir / "sweep.yaml",
        """\
experiment: exp
sweep_name: s1
entry_point: train
project: ../proj
backend: my-plugin
backend_config: backend.json
parameters: {x: [1]}
optuna_storage: sqlite:///state/optuna.db
mlflow_storage: sqlite:///mlflow.db
output_dir: ./out
""",
    )
    config = load_config(path)
    base = config_dir.resolve()
    assert config.project == str((tmp_path / "configs" / "proj").resolve())
    assert Path(config.backend_config) == base / "backend.json"
    assert config.optuna_storage == f"sqlite:///{base / 'state' / 'optuna.db'}"
    assert config.mlflow_storage == f"sqlite:///{base / 'mlflow.db'}"
    assert config.output_dir == base / "out"


def test_relative_config_path_from_another_directory(tmp_path, monkeypatch):
    config_dir = tmp_path / "a" / "b"
    _write(config_dir / "sweep.yaml", MINIMAL + "mlflow_storage: sqlite:///m.db\n")
    monkeypatch.chdir(tmp_path / "a")
    config = load_config("b/sweep.yaml")
    base = config_dir.resolve()
    assert config.path == base / "sweep.yaml"
    assert config.mlflow_storage == f"sqlite:///{base / 'm.db'}"
    assert config.output_dir == base / "sweeps"


def test_absolute_storage_paths_and_servers_are_kept(tmp_path):
    db = tmp_path / "abs" / "optuna.db"
    path = _write(
        tmp_path / "sweep.yaml",
        MINIMAL + f"optuna_storage: sqlite:///{db}\nmlflow_storage: http://127.0.0.1:5000\n",
    )
    config = load_config(path)
    assert config.optuna_storage == f"sqlite:///{db}"
    assert config.mlflow_storage == "http://127.0.0.1:5000"


def test_exponent_without_dot_is_a_float(tmp_path):
    path = _write(
        tmp_path / "sweep.yaml",
        """\
experiment: exp
sweep_name: s1
command: python train.py
algorithm: random
max_trials: 3
parameters:
  lr: [1e-3, 1e-4]
  wd: {low: 1e-6, high: 1e-2, log: true}
  eps: 1e-8
  name: "1e-3"
""",
    )
    config = load_config(path)
    assert config.space.grid_axes() is None  # wd is continuous
    lr = config.space.axes["lr"].grid_values()
    assert lr == (0.001, 0.0001)
    assert all(isinstance(v, float) for v in lr)
    wd = config.space.distributions()["wd"]
    assert wd == FloatDistribution(1e-6, 1e-2, log=True)
    assert config.space.fixed["eps"] == 1e-8 and isinstance(config.space.fixed["eps"], float)
    assert config.space.fixed["name"] == "1e-3"  # a quoted string stays a string
    assert config.algorithm == "random" and config.max_trials == 3


def test_full_config(tmp_path):
    path = _write(
        tmp_path / "sweep.yaml",
        """\
experiment: "my-experiment"
sweep_name: "lr_bs_grid.v2"
command: "python train.py --flag"
algorithm: tpe
parameters:
  lr: [1e-3, 1e-4]
  batch_size: [32, 64]
  seed: 0
  dropout: {low: 0.0, high: 0.5}
  layers: {low: 1, high: 4, type: int}
  wd: {low: 1.0e-6, high: 1.0e-2, log: true}
  optimizer: {values: [adam, sgd]}
max_trials: 50
seed: 7
spec:
  direction: maximize
  metric: val/accuracy
""",
    )
    config = load_config(path)
    assert config.identity == "my-experiment/lr_bs_grid.v2"
    assert config.algorithm == "tpe"
    assert config.max_trials == 50
    assert config.seed == 7
    assert config.objective.direction == "maximize"
    assert config.objective.metric == "val/accuracy"
    assert list(config.space.axes) == ["lr", "batch_size", "dropout", "layers", "wd", "optimizer"]
    assert config.space.fixed == {"seed": 0}
    assert config.space.distributions()["optimizer"] == CategoricalDistribution(["adam", "sgd"])
    assert config.space.distributions()["layers"] == IntDistribution(1, 4)


def test_load_configs_splits_commas(tmp_path):
    paths = []
    for name in ("a", "b", "c"):
        text = MINIMAL.replace("sweep_name: s1", f"sweep_name: {name}")
        paths.append(_write(tmp_path / f"{name}.yaml", text))
    a, b, c = (str(p) for p in paths)
    assert [x.sweep_name for x in load_configs([f"{a},{b},{c}"])] == ["a", "b", "c"]
    assert [x.sweep_name for x in load_configs([a, f"{b},{c}"])] == ["a", "b", "c"]
    assert [x.sweep_name for x in load_configs([f"{c}, {a}"])] == ["c", "a"]
    assert [x.sweep_name for x in load_configs([b])] == ["b"]
