"""A trial that only holds its devices: `name=value` arguments. No MLflow import, so a sweep of
many of these (without `spec`: a trial completes when its process succeeds) costs what the
agent does, not what each trial's imports do.

It appends one JSON line to `record` when it starts and one when it ends, with the devices it got
(`device_env`, default CUDA_VISIBLE_DEVICES) and when it ran; meanwhile it sleeps `hold` seconds,
or with behave=block:FILE waits until FILE exists. Stopped by SIGTERM, it writes its end first.
"""

import json
import os
import signal
import sys
import time

args = dict(arg.split("=", 1) for arg in sys.argv[1:])
record = args.get("record")
behave = args.get("behave", "ok")
common = {
    "pid": os.getpid(),
    "run_id": os.environ.get("MLFLOW_RUN_ID"),
    "devices": os.environ.get(args.get("device_env", "CUDA_VISIBLE_DEVICES")),
    "x": args.get("x"),
}


def write(line: dict) -> None:
    if record:
        with open(record, "a") as fh:
            fh.write(json.dumps(line) + "\n")


def stopped(signum, frame) -> None:  # stopped (an orphan its agent's successor stops): it ends here
    write({**common, "event": "end", "time": time.time()})
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, stopped)
write({**common, "event": "start", "time": time.time()})
if behave.startswith("block:"):
    while not os.path.exists(behave.split(":", 1)[1]):
        time.sleep(0.05)
time.sleep(float(args.get("hold", "0")))
write({**common, "event": "end", "time": time.time()})
