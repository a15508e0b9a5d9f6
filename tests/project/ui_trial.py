"""A test trial for the MLflow UI features: logs `score` = x + y (and `cost` = x) and maybe a model.

model: none | artifact (files under the run's `model/`) | logged (an MLflow logged model "model")
sleep: seconds to wait first, so a test can read the sweep while trials run.
"""

import sys
import time

import prestarted


def main():
    prestarted.hand_over(__file__)
    import mlflow

    params = dict(arg.split("=", 1) for arg in sys.argv[1:])
    time.sleep(float(params.get("sleep", 0)))
    x, y = float(params.get("x", 0)), float(params.get("y", 0))
    with mlflow.start_run():
        mlflow.log_metrics({"score": x + y, "cost": x})
        model = params.get("model", "none")
        if model == "artifact":
            mlflow.log_text("flavors: {}\n", "model/MLmodel")
        elif model == "logged":
            logged = mlflow.initialize_logged_model(name="model")
            mlflow.finalize_logged_model(logged.model_id, "READY")


if __name__ == "__main__":
    main()
