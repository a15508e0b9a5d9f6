"""The demo training run behind the `train` entry point: a linear classifier on scikit-learn's
digits data set, trained by SGD one epoch at a time, logging `val/accuracy` after each epoch, and
with `--log-model 1` the trained model (an MLflow logged model named "model", which a sweep's
`register:` can put in the Model Registry)."""

from __future__ import annotations

import argparse
import time

import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--epochs", type=float, default=8)
    parser.add_argument("--batch-size", type=float, default=64)
    parser.add_argument("--seed", type=float, default=0)
    parser.add_argument("--log-model", type=float, default=0, help="1: log the model (slower)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    epochs, batch_size, seed = int(args.epochs), int(args.batch_size), int(args.seed)
    features, labels = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        features, labels, test_size=0.25, random_state=0, stratify=labels
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = SGDClassifier(
        loss="log_loss",
        learning_rate="constant",
        eta0=args.learning_rate,
        alpha=args.alpha,
        random_state=seed,
    )
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with mlflow.start_run():
        for epoch in range(epochs):
            order = rng.permutation(len(x_train))
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                model.partial_fit(x_train[batch], y_train[batch], classes=classes)
            accuracy = float(model.score(x_val, y_val))
            mlflow.log_metric("val/accuracy", accuracy, step=epoch)
            print(f"epoch {epoch + 1}/{epochs}: val/accuracy={accuracy:.4f}", flush=True)
        # A second objective for multi-objective sweeps (examples/multi_objective.yaml).
        mlflow.log_metric("train_seconds", time.perf_counter() - started)
        if args.log_model:
            log_model(model, x_val[:5])


def log_model(model, example) -> None:
    """The model as an MLflow logged model. Requirements are given, not inferred: inferring
    them imports and scans the environment, seconds per trial."""
    import mlflow.sklearn
    import sklearn

    mlflow.sklearn.log_model(
        model, name="model", input_example=example, pip_requirements=[f"scikit-learn=={sklearn.__version__}"]
    )


if __name__ == "__main__":
    main()
