"""How long the sweep report takes to build on a 200-trial sweep (the close of a sweep pays it).

    python bench/report_time.py [--trials 200] [--multi]

Trials are real Optuna trials of a TPE study over four parameters; no MLflow run is involved
(logging the files is a handful of artifact uploads, measured by the tracking store, not here).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import optuna
import yaml

import mlflow_sweeper.agent  # noqa: F401 - what a closing agent has loaded already
from mlflow_sweeper.config import load_config

MULTI = {"metrics": [{"name": "score", "direction": "maximize"}, {"name": "cost", "direction": "minimize"}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--multi", action="store_true")
    parser.add_argument("--out", help="keep the report in this directory")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "out"
        spec = {"metric": "score", "direction": "maximize"}
        config_path = Path(tmp) / "sweep.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "experiment": "bench",
                    "sweep_name": "report",
                    "command": "python train.py",
                    "algorithm": "tpe",
                    "max_trials": args.trials,
                    "parameters": {
                        "lr": {"low": 1e-4, "high": 1e-1, "log": True},
                        "depth": {"low": 1, "high": 8},
                        "dropout": {"low": 0.0, "high": 0.5},
                        "optimizer": ["sgd", "adam", "rmsprop"],
                    },
                    "spec": spec,
                }
            )
        )
        config = load_config(config_path)
        if args.multi:  # the report reads `spec.metrics` from the raw config
            config = dataclasses.replace(config, raw={**config.raw, "spec": MULTI})
        directions = ["maximize", "minimize"] if args.multi else ["maximize"]
        study = optuna.create_study(directions=directions, sampler=optuna.samplers.TPESampler(seed=0))

        def objective(trial):
            lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
            depth = trial.suggest_int("depth", 1, 8)
            dropout = trial.suggest_float("dropout", 0.0, 0.5)
            opt = trial.suggest_categorical("optimizer", ["sgd", "adam", "rmsprop"])
            score = -((math.log10(lr) + 2.5) ** 2) + 0.1 * depth - dropout + (0.3 if opt == "adam" else 0)
            return (score, depth * (1 + dropout)) if args.multi else score

        study.optimize(objective, n_trials=args.trials)
        started = time.perf_counter()
        from mlflow_sweeper.report import build_report  # plotly, matplotlib: paid at the first report

        imported = time.perf_counter()
        report = build_report(config, study.trials, out)
        built = time.perf_counter()
        print(
            f"{args.trials} trials: {built - started:.2f} s in all "
            f"({imported - started:.2f} s importing, {built - imported:.2f} s building)"
        )
        print("files:", ", ".join(p.name for p in report.files))
        from mlflow.tracking import MlflowClient

        from mlflow_sweeper.report import log_report

        client = MlflowClient(tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        experiment = client.create_experiment("bench", artifact_location=(Path(tmp) / "artifacts").as_uri())
        parent = client.create_run(experiment).info.run_id
        started = time.perf_counter()
        log_report(client, parent, report)
        logged = time.perf_counter() - started
        print(f"logging it to a parent run (SQLite store, local artifacts): {logged:.2f} s")
        print("importance:", {k: round(v, 3) for k, v in report.importance.items()})
        print("problems:", report.problems or "none")


if __name__ == "__main__":
    main()
