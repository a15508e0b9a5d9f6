"""Where a project's files are: a local directory read in place, or a git URI (or a .zip) fetched
once per agent into a temporary copy; and its MLproject, loaded from there."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from .. import compat
from ..errors import ProjectError


def _split_subdirectory(uri: str) -> tuple[str, str]:
    """`uri#sub/dir` as MLflow Projects reads it."""
    base, sep, sub = uri.partition("#")
    return (base, sub) if sep else (uri, "")


def local_path(value: str) -> str | None:
    """The local path a value names (a plain path or a `file:` URI), or None for a remote URI."""
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme == "file" and not parsed.netloc:
        return urllib.parse.unquote(parsed.path)
    if not parsed.scheme or len(parsed.scheme) == 1:
        return value
    return None


def is_remote_uri(uri: str) -> bool:
    """Whether MLflow fetches the project (git, zip over http, a local .zip) into a temporary
    directory rather than reading a directory."""
    base, _ = _split_subdirectory(uri)
    if base.startswith("git@") or base.endswith(".zip"):
        return True
    scheme = urllib.parse.urlparse(base).scheme
    return bool(scheme) and scheme != "file" and len(scheme) > 1  # "C:" is a drive, not a scheme


def local_project_dir(uri: str) -> str:
    """The absolute directory of a local project, or ProjectError naming the missing path.

    MLflow Projects treats a path that does not exist as a git URI and reports a git error; a
    user who mistyped a directory should read that the directory does not exist."""
    base, sub = _split_subdirectory(uri)
    if base.startswith("file:"):
        base = urllib.parse.urlparse(base).path
    root = Path(base).expanduser().resolve()
    if not root.exists():
        raise ProjectError(f"project: no such directory: {root}")
    if not root.is_dir():
        raise ProjectError(f"project: not a directory: {root}")
    directory = root / sub if sub else root
    if not directory.is_dir():
        raise ProjectError(f"project: no subdirectory {sub!r} in {root}")
    return str(directory)


class ProjectSource:
    """Where an agent's trials find the project. A remote project (a git URI) is fetched once per
    agent, on first use, into a temporary directory that `close()` removes; every trial of the
    agent runs from that copy, so a sweep is not slowed (or changed mid-way) by a clone per trial.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self.remote = is_remote_uri(uri)
        self._dir: str | None = None
        self._scratch: str | None = None  # the directory that holds a fetched copy
        self._lock = threading.Lock()

    def local_dir(self) -> str:
        with self._lock:
            if self._dir is None:
                self._dir = self._fetch() if self.remote else local_project_dir(self.uri)
            return self._dir

    @property
    def fetched_dir(self) -> str | None:
        """The fetched copy of a remote project, once fetched."""
        return self._dir if self.remote else None

    def _fetch(self) -> str:
        base, _ = _split_subdirectory(self.uri)
        local = local_path(base)
        if local is not None and not base.startswith("git@") and not os.path.exists(local):
            raise ProjectError(f"project: no such file: {os.path.abspath(local)}")
        # MLflow clones into a temporary directory of its own making, which a failed clone leaves
        # behind: it makes it inside one of ours, removed whatever happens.
        self._scratch = tempfile.mkdtemp(prefix="mlflow-sweeper-project-")
        previous, tempfile.tempdir = tempfile.tempdir, self._scratch
        try:
            return compat.fetch_project_dir(self.uri)
        except compat.CompatError:
            self._remove_scratch()
            raise
        except Exception as exc:  # noqa: BLE001 - git and network errors, in MLflow's words
            self._remove_scratch()
            detail = " ".join(str(exc).split())
            raise ProjectError(f"project: cannot fetch {self.uri}: {detail}") from None
        finally:
            tempfile.tempdir = previous

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def close(self) -> None:
        """Remove a fetched copy (a local project is the user's own directory: never touched)."""
        with self._lock:
            self._remove_scratch()
            if self.remote:
                self._dir = None


def load_project(work_dir: str) -> Any:
    """The parsed MLproject of a local directory (a directory without one is a project whose entry
    points are its scripts, as in MLflow)."""
    try:
        project = compat.load_project(work_dir)
    except compat.CompatError:
        raise
    except Exception as exc:  # noqa: BLE001 - YAML errors, a missing python_env file, ...
        detail = " ".join(str(exc).split())
        raise ProjectError(f"project: cannot load the MLproject of {work_dir}: {detail}") from None
    if getattr(project, "databricks_spark_job_spec", None):
        raise ProjectError(f"project: {work_dir}: databricks_spark_job projects are not supported")
    return project
