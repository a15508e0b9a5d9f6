"""A cheap stand-in for training, with a realistic learning curve: for early-stopping sweeps.

`val/loss` starts near 2 and decays epoch by epoch towards a floor. A larger `lr` learns faster
but settles higher past the sweet spot (about 0.02), and `dropout` away from 0.25 raises the
floor, so curves cross: a trial that looks good early is not always best at the end, as in real
training. Seeded noise makes each epoch's value vary a little. One value per epoch is logged as
`val/loss` with `step=epoch` into the run `mlflow.start_run()` opens (the trial's run when the
sweeper starts it, a new run when started by hand).

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db python curve.py lr=0.01 dropout=0.3 epochs=20
    python curve.py --lr 0.01 --dropout 0.3        # the same, as options
"""

from __future__ import annotations

import math
import random
import sys
import time
import zlib

DEFAULTS = {"lr": 0.01, "dropout": 0.25, "epochs": 30.0, "seconds_per_epoch": 0.1, "seed": 0.0}
METRIC = "val/loss"


def usage(message: str) -> SystemExit:
    print(f"curve.py: {message}", file=sys.stderr)
    return SystemExit(2)


def parse(argv: list[str]) -> dict[str, float]:
    """`name=value` tokens (as the sweeper passes them) and `--name value` / `--name=value`."""
    values = dict(DEFAULTS)
    tokens = list(argv)
    while tokens:
        token = tokens.pop(0)
        if token.startswith("--"):
            token = token[2:]
            if "=" not in token:
                if not tokens:
                    raise usage(f"--{token} needs a value")
                token = f"{token}={tokens.pop(0)}"
        name, sep, text = token.partition("=")
        name = name.replace("-", "_")
        if not sep or name not in DEFAULTS:
            raise usage(f"unknown argument {token!r}; known: {', '.join(DEFAULTS)}")
        try:
            values[name] = float(text)
        except ValueError:
            raise usage(f"{name} must be a number, got {text!r}") from None
    if values["lr"] <= 0 or values["epochs"] < 1 or not 0 <= values["dropout"] < 1:
        raise usage("need lr > 0, epochs >= 1 and 0 <= dropout < 1")
    return values


def loss_at(epoch: int, lr: float, dropout: float, noise: random.Random) -> float:
    """The validation loss after `epoch` epochs (0 = after the first)."""
    speed = 0.6 * lr / (lr + 0.02)  # learning speed saturates with lr
    floor = 0.05 + 0.12 * (math.log10(lr) + 1.7) ** 2 + 0.8 * (dropout - 0.25) ** 2
    start = 2.0
    clean = floor + (start - floor) * math.exp(-speed * (epoch + 1))
    return clean * (1.0 + 0.02 * noise.gauss(0.0, 1.0))


def main(argv: list[str]) -> None:
    args = parse(argv)
    import mlflow

    key = f"{args['seed']}:{args['lr']}:{args['dropout']}".encode()
    noise = random.Random(zlib.crc32(key))
    epochs = int(args["epochs"])
    with mlflow.start_run():
        for epoch in range(epochs):
            time.sleep(args["seconds_per_epoch"])
            value = loss_at(epoch, args["lr"], args["dropout"], noise)
            mlflow.log_metric(METRIC, value, step=epoch)
            print(f"epoch {epoch + 1}/{epochs}: {METRIC}={value:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
