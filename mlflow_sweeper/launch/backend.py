"""Other backends (kubernetes, databricks, plugins): `mlflow.projects.run(synchronous=False)`.

Such a backend creates the trial's run itself; the launcher hands it to `request.runs.adopt`,
which nests it under the parent and tags it, so the agent gets a run id like any other launch.

The backend's own calls to the tracking store (creating the run, reading its status) go through
MLflow's process-wide store, whose database pool the agent keeps small: they take the same turns
as the agent's own calls (`store_turn`), or threads could starve each other of connections.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .base import Launcher, TrialHandle, TrialRequest, text


def status_name(status: Any) -> str:
    """A `SubmittedRun.get_status()` as a name: MLflow's kubernetes backend returns `RunStatus`
    numbers, its local and databricks backends (and most plugins) the names."""
    from mlflow.entities import RunStatus

    if isinstance(status, int) and not isinstance(status, bool):
        try:
            return RunStatus.to_string(status)
        except Exception:  # noqa: BLE001 - not a RunStatus number
            return str(status)
    return str(status)


class SubmittedRunHandle(TrialHandle):
    """A handle over MLflow's `SubmittedRun`."""

    def __init__(self, submitted, store_turn: Callable[[], AbstractContextManager] | None = None):
        self.submitted = submitted
        self.run_id = submitted.run_id
        self.store_turn = store_turn or nullcontext

    def poll(self) -> bool | None:
        with self.store_turn():
            status = status_name(self.submitted.get_status())
        if status in ("RUNNING", "SCHEDULED"):
            return None
        return status == "FINISHED"

    def cancel(self) -> None:
        with self.store_turn():
            self.submitted.cancel()


class BackendLauncher(Launcher):
    # A backend runs in the agent's process and may call the store from threads of its own (a
    # job's watcher ending its run): one call at a time per job, two connections in some calls.
    store_connections_per_trial = 2

    def prepare(self) -> None:
        from ..tracking_store import make_current

        # MLflow Projects creates the run in the process-wide tracking store: make it the sweep's.
        make_current(self.tracking_uri)

    def launch(self, request: TrialRequest) -> TrialHandle:
        import mlflow.projects

        self.ensure_prepared()
        # `path` values resolved against the project, as for local trials (MLflow would resolve
        # them against the agent's working directory).
        params = self.checked.trial_parameters(request.params) if self.checked else request.params
        with self.store_turn():
            submitted = mlflow.projects.run(
                uri=self.config.project,
                entry_point=self.config.entry_point,
                parameters={k: text(v) for k, v in params.items()},
                experiment_id=request.experiment_id,
                backend=self.config.backend,
                backend_config=self.config.backend_config,
                env_manager=self.config.env_manager,
                synchronous=False,
            )
        handle = SubmittedRunHandle(submitted, self.store_turn)
        try:
            request.runs.adopt(handle.run_id)
        except BaseException:
            handle.cancel()  # a run we could not nest must not go on unaccounted for
            raise
        return handle
