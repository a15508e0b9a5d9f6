"""For training code: continue where the last attempt of this point stopped.

Every trial gets `SWEEPER_TRIAL` (its number), `SWEEPER_ATTEMPT` (1, 2, ...) and, when an earlier
attempt of the same point has a run (a retry, a trial re-run after its agent died, a point
resumed after Ctrl-C), `SWEEPER_RESUME_RUN_ID`. Training code that logs its checkpoints as
artifacts of its run gets them back with `restore()`, on any host, with no shared filesystem::

    from mlflow_sweeper.resume import restore

    start = 0
    found = restore("checkpoints")
    if found:
        start = load_checkpoint(found) + 1

Imports are light (mlflow only when an earlier run exists), so it costs a trial nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator

TRIAL_ENV = "SWEEPER_TRIAL"
ATTEMPT_ENV = "SWEEPER_ATTEMPT"
RESUME_ENV = "SWEEPER_RESUME_RUN_ID"
RESUMED_FROM_TAG = "sweeper.resumed_from"  # on a trial run: the earlier attempt's run
MAX_HOPS = 20  # earlier attempts looked at when the latest left nothing under the path

log = logging.getLogger(__name__)  # unconfigured, Python still prints its warnings on stderr


def trial_variables(number: int, attempt: int, resume_run_id: str | None) -> dict[str, str]:
    """The variables every trial's environment gets."""
    found = {TRIAL_ENV: str(number), ATTEMPT_ENV: str(attempt)}
    if resume_run_id:
        found[RESUME_ENV] = resume_run_id
    return found


def resume_run_id() -> str | None:
    """The earlier attempt's run: from the environment, else from the current run's tag (a
    trial on a remote backend, whose environment the agent does not set)."""
    given = os.environ.get(RESUME_ENV)
    if given:
        return given
    current = os.environ.get("MLFLOW_RUN_ID")
    if not current:
        return None
    try:
        from mlflow.tracking import MlflowClient

        return MlflowClient().get_run(current).data.tags.get(RESUMED_FROM_TAG) or None
    except Exception:  # noqa: BLE001 - no store to ask: start afresh
        return None


def _scratch_dir() -> str:
    """A directory for the download that goes when the trial's process ends: checkpoints can be
    large, and every attempt of every trial would otherwise leave a copy in the temp folder."""
    path = tempfile.mkdtemp(prefix="sweeper-restore-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def restore(artifact_path: str = "checkpoints", dst: str | None = None) -> str | None:
    """The local directory holding the earlier attempt's artifacts under `artifact_path` (the
    local file, where `artifact_path` names one file), or None (a first attempt, or no earlier
    attempt logged anything there).

    When the latest earlier attempt logged nothing there (it died before its first checkpoint),
    the attempts before it are looked at, latest first."""
    run_id = resume_run_id()
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    seen: set[str] = set()
    for _ in range(MAX_HOPS):
        if not run_id or run_id in seen:
            return None
        seen.add(run_id)
        try:
            earlier = client.get_run(run_id)
        except MlflowException as exc:  # the earlier run is gone (purged since): nothing to restore
            log.warning(
                "restore: the earlier attempt's run %s cannot be read (%s): starting afresh", run_id, exc
            )
            return None
        if client.list_artifacts(run_id, artifact_path) or _logged_file(client, run_id, artifact_path):
            target = dst or _scratch_dir()
            with _no_progress_bar():
                return client.download_artifacts(run_id, artifact_path, target)
        run_id = earlier.data.tags.get(RESUMED_FROM_TAG)
    return None


PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a download's progress bar on the trial's output: in its log it would crowd
    the last lines shown when the trial fails. Off for the download, unless the user set it."""
    if PROGRESS_BAR in os.environ:
        yield
        return
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_BAR, None)


def _logged_file(client, run_id: str, artifact_path: str) -> bool:
    """Whether the run logged one file at `artifact_path` (listing a file lists nothing)."""
    path = artifact_path.rstrip("/")
    listed = client.list_artifacts(run_id, os.path.dirname(path) or None)
    return any(entry.path == path and not entry.is_dir for entry in listed)
