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
    process = _mlflow_run_process()
    try:
        return Path(process.cwd()) if process is not None else None
    except (psutil.Error, OSError):
        return None  # gone


@functools.cache
def tracking_uri_from_mlflow_run() -> bool:
    """Did `mlflow run` itself put MLFLOW_TRACKING_URI in this process's environment (its own
    default store, for its run), the user having set none where they typed the command?"""
    process = _mlflow_run_process() if under_mlflow_run() else None
    try:
        return process is not None and "MLFLOW_TRACKING_URI" not in process.environ()
    except (psutil.Error, OSError):
        return False  # unreadable: taken as the user's


def _mlflow_run_process() -> psutil.Process | None:
    for process in _ancestors():
        try:
            arguments = process.cmdline()
            if "run" in arguments and any(Path(a).name == "mlflow" for a in arguments):
                return process
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
