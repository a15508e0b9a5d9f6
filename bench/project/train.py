"""The benchmarks' trivial trial: import mlflow and log one metric (m = x)."""

import argparse

import mlflow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.0)
    args = parser.parse_args()
    with mlflow.start_run():
        mlflow.log_metric("m", args.x)


if __name__ == "__main__":
    main()
