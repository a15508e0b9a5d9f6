"""A test trial. Arguments are `name=value` or `--name value`; it logs `score` = x + y.

behave: ok | fail | fail_once | no_metric | sleep:<seconds> | nan | hang
        | oom              print its arguments and an out-of-memory error, exit 1
        | light:<seconds>  sleep, then succeed without importing MLflow (for sweeps without `spec`)
        | block:<path>     wait until <path> exists, then behave as ok
        | stubborn:<path>  as block:<path>, but ignore SIGTERM meanwhile (only SIGKILL stops it)
        | block_crash:<path>  wait until <path> exists, log `score` outside a `with` block, then
                              crash (exit 1), though MLflow ends the run FINISHED at exit
record: a file to which one JSON line (params, run id, pid) is appended, atomically.
"""

import json
import os
import signal
import sys
import time


def parse(argv):
    params, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            params[arg[2:]] = argv[i + 1]
            i += 2
        else:
            name, _, value = arg.partition("=")
            params[name] = value
            i += 1
    return params


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float(len(str(text)))


def run_prestarted():
    """In the test suite, run in a fork of a process that has imported MLflow (prestarted.py), to
    spare each trial MLflow's import; elsewhere, here. Only for trials that are not killed by pid:
    the fork's pid is its own."""
    try:
        import prestarted
    except ImportError:  # this script copied alone
        return
    prestarted.hand_over(__file__)


def main():
    params = parse(sys.argv[1:])
    behave = params.get("behave", "ok")
    if behave in ("ok", "nan", "no_metric"):
        run_prestarted()
    record = params.get("record") or ""
    if record:
        line = (
            json.dumps(
                {
                    "argv": sys.argv[1:],
                    "params": params,
                    "run_id": os.environ.get("MLFLOW_RUN_ID"),
                    "pid": os.getpid(),
                    "time": time.time(),
                }
            )
            + "\n"
        )
        fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, line.encode())
        os.close(fd)
    if behave.startswith("light:"):
        time.sleep(float(behave.split(":", 1)[1]))
        return
    if behave.startswith("sleep:"):
        time.sleep(float(behave.split(":", 1)[1]))
    if behave == "hang":
        time.sleep(3600)
    if behave.startswith(("block:", "stubborn:", "block_crash:")):
        kind, _, path = behave.partition(":")
        if kind == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while not os.path.exists(path):
            time.sleep(0.1)
    if behave.startswith("block_crash:"):
        import mlflow

        mlflow.log_metric("score", number(params.get("x")) + number(params.get("y")))
        raise RuntimeError("crashed after logging its metric")
    if behave == "fail":
        sys.exit(3)
    if behave == "oom":
        print(f"arguments: {sys.argv[1:]}\nRuntimeError: CUDA out of memory", flush=True)
        sys.exit(1)
    if behave == "fail_once":
        marker = os.path.join(
            os.path.dirname(os.path.abspath(record or __file__)),
            f"failed-once-{params.get('x')}-{params.get('y')}",
        )
        if not os.path.exists(marker):
            open(marker, "w").close()
            sys.exit(4)
    import mlflow

    with mlflow.start_run():
        if behave == "nan":
            mlflow.log_metric("score", float("nan"))
        elif behave != "no_metric":
            mlflow.log_metric("score", number(params.get("x")) + number(params.get("y")))


if __name__ == "__main__":
    main()
