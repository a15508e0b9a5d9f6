"""Where the user typed the command. `mlflow run <this project> -e sweep` runs the entry point in
this project's directory, so a relative path the user gave (a config, a SQLite store in
MLFLOW_TRACKING_URI) is meant from the directory of the `mlflow run` process above this one."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
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


MLFLOW_RUN_LOOK_EVERY = 1.0  # seconds between looks at the `mlflow run` that started this one


def when_mlflow_run_ends(act: Callable[[], None], every: float = MLFLOW_RUN_LOOK_EVERY) -> bool:
    """Under `mlflow run`: `act` once that process has ended. A SIGTERM to `mlflow run` ends it
    without a word to the entry point it started (Ctrl-C reaches both through the terminal), which
    would run on unseen, its MLflow run left RUNNING. True when there is one to watch."""
    process = _mlflow_run_process() if under_mlflow_run() else None
    if process is None:
        return False

    def watch() -> None:
        while _running(process):
            time.sleep(every)
        act()

    threading.Thread(target=watch, name="mlflow-run-watch", daemon=True).start()
    return True


def _running(process: psutil.Process) -> bool:
    try:  # a pid taken by a new process since reads as ended (psutil compares start times)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
