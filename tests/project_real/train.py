"""An MLflow example-shaped training script: argparse flags, a data file, `mlflow.start_run()`.

Fits y = w * x by gradient descent with an elastic-net penalty and logs the training RMSE.
"""

import argparse
import csv
import math

import mlflow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--l1-ratio", type=float, default=0.1)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--solver", choices=["cd", "sgd"], default="cd")
    parser.add_argument("--data", required=True)
    args = parser.parse_args()

    with open(args.data, newline="") as fh:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(fh)]
    step = 0.01 if args.solver == "cd" else 0.005
    weight = 0.0
    for _ in range(args.max_iter):
        gradient = sum(2 * (weight * x - y) * x for x, y in rows) / len(rows)
        penalty = args.alpha * (args.l1_ratio * math.copysign(1.0, weight) + (1 - args.l1_ratio) * weight)
        weight -= step * (gradient + penalty)
    rmse = math.sqrt(sum((weight * x - y) ** 2 for x, y in rows) / len(rows))

    with mlflow.start_run():
        mlflow.log_metric("rmse", rmse)
    print(f"weight={weight:.4f} rmse={rmse:.4f}")


if __name__ == "__main__":
    main()
