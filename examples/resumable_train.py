"""A PyTorch-style training loop that survives being stopped: one checkpoint per epoch, logged
as an artifact of the trial's run, and a start from the last one through `restore()`.

The "model" is a logistic regression trained with numpy minibatch SGD on a synthetic data set,
so the example runs anywhere; swap in `torch.save`/`torch.load` and your model for real work.
Kill the agent mid-sweep, or press Ctrl-C, and run it again: each interrupted trial continues
from its last epoch (SWEEPER_RESUME_RUN_ID names the earlier attempt's run).

    python resumable_train.py --lr 0.1 --batch-size 64 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import mlflow
import numpy as np

from mlflow_sweeper.resume import restore

CHECKPOINTS = "checkpoints"


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 20))
    w = rng.normal(size=20)
    y = (x @ w + rng.normal(scale=2.0, size=2000) > 0).astype(float)
    return x[:1600], y[:1600], x[1600:], y[1600:]


def save(path: str, weights: np.ndarray, epoch: int) -> None:
    np.save(os.path.join(path, "weights.npy"), weights)
    with open(os.path.join(path, "state.json"), "w") as fh:
        json.dump({"epoch": epoch}, fh)


def load(path: str) -> tuple[np.ndarray, int]:
    with open(os.path.join(path, "state.json")) as fh:
        epoch = json.load(fh)["epoch"]
    return np.load(os.path.join(path, "weights.npy")), epoch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seconds-per-epoch", type=float, default=0.5)  # a stand-in for real work
    args = parser.parse_args()

    x, y, vx, vy = data()
    weights, start = np.zeros(x.shape[1]), 0
    found = restore(CHECKPOINTS)  # None on a first attempt
    if found:
        weights, last = load(found)
        start = last + 1
        print(f"resuming from epoch {start} (run {os.environ.get('SWEEPER_RESUME_RUN_ID')})")
    devices = os.environ.get("CUDA_VISIBLE_DEVICES", "none")
    print(f"devices: {devices}, attempt {os.environ.get('SWEEPER_ATTEMPT')}")
    rng = np.random.default_rng(start)
    with mlflow.start_run():  # the trial's run when the sweeper starts it
        for epoch in range(start, args.epochs):
            order = rng.permutation(len(x))
            for begin in range(0, len(x), args.batch_size):
                batch = order[begin : begin + args.batch_size]
                p = 1 / (1 + np.exp(-x[batch] @ weights))
                weights -= args.lr * x[batch].T @ (p - y[batch]) / len(batch)
            time.sleep(args.seconds_per_epoch)
            accuracy = float(((vx @ weights > 0) == vy).mean())
            mlflow.log_metric("val/accuracy", accuracy, step=epoch)
            with tempfile.TemporaryDirectory() as tmp:
                save(tmp, weights, epoch)
                mlflow.log_artifacts(tmp, artifact_path=CHECKPOINTS)
        if start >= args.epochs:  # the last attempt had finished training: its result is this run's
            accuracy = float(((vx @ weights > 0) == vy).mean())
            mlflow.log_metric("val/accuracy", accuracy, step=args.epochs - 1)


if __name__ == "__main__":
    main()
