"""The drift refusal names what changed, in words a user wrote in the config."""

from __future__ import annotations

import pytest

from mlflow_sweeper.coordination.drift import describe_drift, drift_refusal


def range_(low, high, type_="float", log=False, step=None):
    return {"low": low, "high": high, "type": type_, "log": log, "step": step}


STORED = {
    "parameters": {
        "axes": {
            "hiden": range_(32, 256, "int"),
            "lr": range_(1e-4, 0.1, log=True),
            "act": {"values": ["relu", "tanh"]},
        },
        "fixed": {"epochs": 10},
    },
    "algorithm": "tpe",
    "seed": 0,
    "direction": "maximize",
    "metric": "val/accuracy",
}


def changed(**changes) -> dict:
    current = {
        **STORED,
        "parameters": {
            "axes": dict(STORED["parameters"]["axes"]),
            "fixed": dict(STORED["parameters"]["fixed"]),
        },
    }
    for key, value in changes.items():
        if key in ("axes", "fixed"):
            current["parameters"][key] = value
        else:
            current[key] = value
    return current


AXES = STORED["parameters"]["axes"]

CASES = {
    "renamed": (
        changed(axes={"hidden": AXES["hiden"], "lr": AXES["lr"], "act": AXES["act"]}),
        ["parameter 'hiden' is now 'hidden'"],
    ),
    "bound": (changed(axes={**AXES, "lr": range_(1e-4, 0.2, log=True)}), ["lr: high 0.1 -> 0.2"]),
    "values": (
        changed(axes={**AXES, "act": {"values": ["relu", "gelu"]}}),
        ["act: values ['relu', 'tanh'] -> ['relu', 'gelu']"],
    ),
    "added": (changed(axes={**AXES, "dropout": range_(0.0, 0.5)}), ["parameter 'dropout' added"]),
    "removed": (changed(axes={"hiden": AXES["hiden"], "lr": AXES["lr"]}), ["parameter 'act' removed"]),
    "fixed": (changed(fixed={"epochs": 20}), ["epochs: value 10 -> 20"]),
    "kind": (
        changed(axes={**AXES, "act": {"values": ["relu"]}, "lr": {"values": [0.1]}}),
        [
            "lr: range low 0.0001, high 0.1, type 'float', log true, step none -> values [0.1]",
            "act: values ['relu', 'tanh'] -> ['relu']",
        ],
    ),
    "metric": (
        changed(metric="val/loss", direction="minimize"),
        ["metric 'val/accuracy' -> 'val/loss'", "direction 'maximize' -> 'minimize'"],
    ),
    "algorithm": (changed(algorithm="random", seed=1), ["algorithm 'tpe' -> 'random'", "seed 0 -> 1"]),
    "sampler_options": (
        changed(sampler_options={"n_startup_trials": 5}),
        ["'sampler_options' added ({n_startup_trials: 5})"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_change_is_named(name):
    current, expected = CASES[name]
    assert sorted(describe_drift(STORED, current)) == sorted(expected)


def test_nothing_changed_says_nothing():
    assert describe_drift(STORED, changed()) == []


def test_the_refusal_says_what_changed_and_how_to_proceed():
    message = drift_refusal(
        "sweep.yaml", "exp/s1", ["lr: high 0.1 -> 0.2", "metric 'a' -> 'b'"], "Only x may change."
    )
    assert message.startswith("sweep.yaml: sweep 'exp/s1' already exists with a different definition: ")
    assert "lr: high 0.1 -> 0.2; metric 'a' -> 'b'." in message
    assert "new 'sweep_name'" in message
    assert "`mlflow-sweeper delete sweep.yaml` first" in message
    assert "\n" not in message


def test_warm_start_is_advised_once_the_config_has_it():
    from mlflow_sweeper.config.schema import KEYS

    message = drift_refusal("sweep.yaml", "exp/s1", ["seed 0 -> 1"], "")
    assert ("`warm_start` from 'exp/s1'" in message) == ("warm_start" in KEYS), message
