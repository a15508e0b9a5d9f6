"""A cheap command trial for the search benchmarks: a test function, logged through MLflow's REST API.

    python objective.py fn=branin [sleep=S] x=1.0 y=2.0          (parameters as the sweeper passes them)

It logs the function's value as metric `value` into the trial's run (MLFLOW_RUN_ID) on the
tracking server at MLFLOW_TRACKING_URI (http://...), with the standard library only: a trial costs
a Python start and one HTTP request, so a benchmark can run thousands of them. Functions:
`branin` (x in [-5, 10], y in [0, 15]; minimum 0.397887) and `hartmann6` (x1..x6 in [0, 1];
minimum -3.32237).
"""

import json
import math
import os
import sys
import time
import urllib.request


def branin(p):
    x, y = p["x"], p["y"]
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (y - b * x * x + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


HARTMANN_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
HARTMANN_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(p):
    xs = [p[f"x{i}"] for i in range(1, 7)]
    total = 0.0
    for alpha, a_row, p_row in zip(HARTMANN_ALPHA, HARTMANN_A, HARTMANN_P, strict=True):
        inner = sum(a * (x - q) ** 2 for a, x, q in zip(a_row, xs, p_row, strict=True))
        total += alpha * math.exp(-inner)
    return -total


FUNCTIONS = {"branin": branin, "hartmann6": hartmann6, "sphere": lambda p: sum(v * v for v in p.values())}


def main(argv):
    args = dict(token.split("=", 1) for token in argv)
    fn = FUNCTIONS[args.pop("fn", "branin")]
    time.sleep(float(args.pop("sleep", 0)))  # a trial that takes a while, so that several run at once
    value = fn({k: float(v) for k, v in args.items()})
    uri, run_id = os.environ["MLFLOW_TRACKING_URI"].rstrip("/"), os.environ["MLFLOW_RUN_ID"]
    body = {"run_id": run_id, "key": "value", "value": value, "timestamp": int(time.time() * 1000), "step": 0}
    request = urllib.request.Request(
        uri + "/api/2.0/mlflow/runs/log-metric",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


if __name__ == "__main__":
    main(sys.argv[1:])
