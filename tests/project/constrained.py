"""A test trial with a constraint metric: logs `score` = x + y and `latency` = 10 * x.

Arguments are `name=value`. Without `latency=no`, both metrics are logged (`latency=nan`: NaN).
"""

import sys

import prestarted


def main():
    prestarted.hand_over(__file__)
    params = dict(arg.partition("=")[::2] for arg in sys.argv[1:])
    x, y = float(params["x"]), float(params["y"])
    import mlflow

    with mlflow.start_run():
        mlflow.log_metric("score", x + y)
        if params.get("latency") == "nan":
            mlflow.log_metric("latency", float("nan"))
        elif params.get("latency") != "no":
            mlflow.log_metric("latency", 10 * x)


if __name__ == "__main__":
    main()
