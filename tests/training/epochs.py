"""A training loop for the device, resume and triage tests: `name=value` arguments.

Each epoch it logs a checkpoint (`checkpoints/state.json`) as an artifact of its run and the
metric `loss`; it starts from the checkpoint `restore()` finds. It appends one JSON line to
`record` when it starts and one when it ends, with the devices it got and when it ran.

behave: ok | oom | nan | inf | fail | fail_at:N (attempt 1 fails at epoch N) | usage
        | block:FILE (waits each epoch until FILE exists) | other_metric
        | nan_fail (logs a NaN objective, then exits 1, as a loop aborting on a NaN loss)
"""

import json
import os
import sys
import tempfile
import time

import mlflow

from mlflow_sweeper.resume import restore

args = dict(arg.split("=", 1) for arg in sys.argv[1:])
print(f"arguments: {sys.argv[1:]}", flush=True)  # its log holds what it was given
record = args.get("record")
behave = args.get("behave", "ok")
epochs = int(args.get("epochs", "3"))
hold = float(args.get("hold", "0"))
device_env = args.get("device_env", "CUDA_VISIBLE_DEVICES")


def write(line: dict) -> None:
    if record:
        with open(record, "a") as fh:
            fh.write(json.dumps(line) + "\n")


if behave == "usage":
    print("usage: train.py [-h] [--hidden HIDDEN]", file=sys.stderr)
    print("train.py: error: unrecognized arguments: --hiden 64", file=sys.stderr)
    sys.exit(2)

found = restore("checkpoints")
start = 0
if found:
    with open(os.path.join(found, "state.json")) as fh:
        start = json.load(fh)["epoch"] + 1
common = {
    "pid": os.getpid(),
    "run_id": os.environ.get("MLFLOW_RUN_ID"),
    "devices": os.environ.get(device_env),
    "trial": os.environ.get("SWEEPER_TRIAL"),
    "attempt": os.environ.get("SWEEPER_ATTEMPT"),
    "resume": os.environ.get("SWEEPER_RESUME_RUN_ID"),
    "restored": found,
    "x": args.get("x"),
}
write({**common, "event": "start", "start_epoch": start, "time": time.time()})
with mlflow.start_run():
    for epoch in range(start, epochs):
        if behave.startswith("block:"):
            while not os.path.exists(behave.split(":", 1)[1]):
                time.sleep(0.05)
        time.sleep(hold)
        if behave.startswith("fail_at:") and common["attempt"] == "1" and epoch == int(behave.split(":")[1]):
            print(f"crashed at epoch {epoch}", file=sys.stderr)
            sys.exit(1)
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "state.json"), "w") as fh:
                json.dump({"epoch": epoch}, fh)
            mlflow.log_artifact(os.path.join(tmp, "state.json"), artifact_path="checkpoints")
        mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
        write({**common, "event": "epoch", "epoch": epoch, "time": time.time()})
    if behave == "oom":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
        sys.exit(1)
    if behave == "fail":
        print("something broke", file=sys.stderr)
        sys.exit(1)
    if behave == "nan_fail":
        mlflow.log_metric("score", float("nan"))
        print("the loss is NaN: stopping", file=sys.stderr)
        sys.exit(1)
    value = {"nan": float("nan"), "inf": float("inf")}.get(behave, float(args.get("x", "1")))
    mlflow.log_metric("val/accuracy" if behave == "other_metric" else "score", value)
write({**common, "event": "end", "time": time.time()})
