"""A real PyTorch trial on the GPU the sweeper gave it: records what it saw, logs a checkpoint
per epoch, crashes once at `--crash-at` on its first attempt, and resumes from the checkpoint."""

import argparse
import json
import os
import tempfile
import time

import mlflow
import torch

from mlflow_sweeper.resume import restore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--crash-at", type=int, default=-1)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    began = time.time()
    seen = {
        "trial": os.environ.get("SWEEPER_TRIAL"),
        "attempt": os.environ.get("SWEEPER_ATTEMPT"),
        "resume_run": os.environ.get("SWEEPER_RESUME_RUN_ID"),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count(),
        "lr": args.lr,
        "width": args.width,
        "pid": os.getpid(),
        "began": began,
    }
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        seen.update(device_name=props.name, device_uuid=str(getattr(props, "uuid", "")))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 64, generator=generator)
    y = ((x @ torch.randn(64, generator=generator)) > 0).long()
    x, y = x.to(device), y.to(device)
    layers = [torch.nn.Linear(64, args.width), torch.nn.ReLU(), torch.nn.Linear(args.width, 2)]
    model = torch.nn.Sequential(*layers).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    start = 0
    found = restore("checkpoints")
    if found:
        state = torch.load(os.path.join(found, "ckpt.pt"), map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"] + 1
    seen["start_epoch"] = start

    def record(**more) -> None:
        with open(args.record, "a") as fh:
            fh.write(json.dumps({**seen, **more, "ended": time.time()}) + "\n")

    accuracy = None
    with mlflow.start_run():
        for epoch in range(start, args.epochs):
            for i in range(0, 16000, 256):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[i : i + 256]), y[i : i + 256])
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                accuracy = (model(x[16000:]).argmax(1) == y[16000:]).float().mean().item()
            mlflow.log_metric("val/accuracy", accuracy, step=epoch)
            with tempfile.TemporaryDirectory() as tmp:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
                torch.save(state, os.path.join(tmp, "ckpt.pt"))
                mlflow.log_artifacts(tmp, artifact_path="checkpoints")
            if epoch == args.crash_at and os.environ.get("SWEEPER_ATTEMPT") == "1":
                record(outcome=f"crashed after epoch {epoch}", accuracy=accuracy)
                raise SystemExit(3)
    memory = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    record(outcome="finished", accuracy=accuracy, max_memory_allocated=memory)


if __name__ == "__main__":
    main()
