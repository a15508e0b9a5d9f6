"""A test trial for the search features. Arguments are `name=value`.

It appends one JSON line (its arguments, run id) to `record` (atomically), then logs:
  score = the sum of its numeric arguments but `steps`
  m1 = x, m2 = x * x + y                      (two objectives with a trade-off)
  curve at steps 0..steps-1 = x * (step + 1)  (a per-step history), `pause` seconds apart
"""

import contextlib
import json
import os
import sys
import time

import prestarted


def main():
    prestarted.hand_over(__file__)
    params = dict(arg.partition("=")[::2] for arg in sys.argv[1:])
    record = params.pop("record", "")
    if record:
        line = json.dumps({"params": params, "run_id": os.environ.get("MLFLOW_RUN_ID")}) + "\n"
        fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, line.encode())
        os.close(fd)
    steps = int(params.pop("steps", 0))
    pause = float(params.pop("pause", 0))
    numbers = {}
    for name, text in params.items():
        with contextlib.suppress(ValueError):
            numbers[name] = float(text)
    import mlflow

    with mlflow.start_run():
        x, y = numbers.get("x", 0.0), numbers.get("y", 0.0)
        for step in range(steps):
            mlflow.log_metric("curve", x * (step + 1), step=step)
            time.sleep(pause)
        mlflow.log_metrics({"score": sum(numbers.values()), "m1": x, "m2": x * x + y})


if __name__ == "__main__":
    main()
