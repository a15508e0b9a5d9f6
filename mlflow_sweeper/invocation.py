"""Where the user typed the command. `mlflow run <this project> -e sweep` runs the entry point in
this project's directory, so a relative path the user gave (a config, a SQLite store in
MLFLOW_TRACKING_URI) is meant from the directory of the `mlflow run` process above this one."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import psutil


def under_mlflow_run() -> bool:
    """Was this process started by MLflow Projects (`mlflow run`) for its own run?"""
    return "MLFLOW_RUN_ID" in os.environ


@functools.cache
def mlflow_run_directory() -> Path | None:
    """The working directory of the `mlflow run` process above this one, if there is one."""
    for process in _ancestors():
        try:
            arguments = process.cmdline()
            if "run" in arguments and any(Path(a).name == "mlflow" for a in arguments):
                return Path(process.cwd())
        except (psutil.Error, OSError):
            continue  # another user's process, or gone
    return None


def starting_directories() -> list[Path]:
    """The working directories of the processes that started this one, nearest first."""
    here = Path.cwd()
    found: list[Path] = []
    for process in _ancestors():
        try:
            directory = Path(process.cwd())
        except (psutil.Error, OSError):
            continue  # another user's process, or gone
        if directory != here and directory not in found:
            found.append(directory)
    return found


def _ancestors(depth: int = 6) -> list[psutil.Process]:
    """The processes above this one, nearest first (none when they cannot be read)."""
    try:
        return psutil.Process().parents()[:depth]
    except psutil.Error:
        return []
