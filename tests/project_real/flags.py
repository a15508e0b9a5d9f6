"""A plain argparse script, as a user would sweep with `command`: flags, not name=value tokens.

Prints the arguments it received as JSON (what arrived, verbatim) and, under a trial's run,
logs a score computed from them.
"""

import argparse
import json
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--name", default="")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    print(json.dumps({"argv": sys.argv[1:], "args": vars(args)}))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(str(args.lr))
    if os.environ.get("MLFLOW_RUN_ID"):
        import mlflow

        with mlflow.start_run():
            mlflow.log_metric("score", args.lr * args.epochs)


if __name__ == "__main__":
    main()
