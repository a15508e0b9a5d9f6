"""The CLI, with two timings per trial written to a JSON file at exit: how long the agent waited
for the trial's process (launch to exit), and how long the trial's MLflow calls took (the run
created with its params, its metric read, the run ended, the best put on the parent).

    SWEEPER_BENCH_WAITS=waits.json python bench/timed_agent.py sweep CONFIG -j 1

The agent's own cost per trial is then measured directly: the gap between two trial starts minus
the wait, with no bare trial measured apart and subtracted (a tracking server's latency varies by
tens of ms), and split into the MLflow run's share and the rest (Optuna and the coordination).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections import defaultdict

from mlflow_sweeper.agent.trial import TrialExecution
from mlflow_sweeper.record import Recorder

WAITS: dict[int, float] = {}
MLFLOW: dict[int, float] = defaultdict(float)
CURRENT = threading.local()  # the trial number a worker thread is running
_await_end = TrialExecution.await_end
_run = TrialExecution.run
RECORDER_CALLS = ("create_trial_run", "read_run", "end_trial_run", "record_best")


def timed_run(self):
    CURRENT.number = self.work.number
    return _run(self)


def timed_recorder_call(method):
    def call(*args, **kwargs):
        began = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            number = getattr(CURRENT, "number", None)
            if number is not None:
                MLFLOW[number] += time.perf_counter() - began

    return call


def timed_await_end(self, handle):
    began = time.perf_counter()
    try:
        return _await_end(self, handle)
    finally:
        WAITS[self.work.number] = time.perf_counter() - began


def write_waits() -> None:
    with open(os.environ["SWEEPER_BENCH_WAITS"], "w") as out:
        json.dump({"waits": WAITS, "mlflow": MLFLOW}, out)


if __name__ == "__main__":
    TrialExecution.await_end = timed_await_end
    TrialExecution.run = timed_run
    for name in RECORDER_CALLS:
        setattr(Recorder, name, timed_recorder_call(getattr(Recorder, name)))
    atexit.register(write_waits)
    from mlflow_sweeper.cli import main

    sys.argv = ["mlflow-sweeper", *sys.argv[1:]]
    main()
