"""Other backends (kubernetes, databricks, plugins): `mlflow.projects.run(synchronous=False)`.

Such a backend creates the trial's run itself; the launcher hands it to `request.runs.adopt`,
which nests it under the parent and tags it, so the agent gets a run id like any other launch.
"""

from __future__ import annotations

from .base import Launcher, TrialHandle, TrialRequest, text


class SubmittedRunHandle(TrialHandle):
    """A handle over MLflow's `SubmittedRun`."""

    def __init__(self, submitted):
        self.submitted = submitted
        self.run_id = submitted.run_id

    def poll(self) -> bool | None:
        from mlflow.entities import RunStatus

        status = self.submitted.get_status()
        if status in (RunStatus.to_string(RunStatus.RUNNING), RunStatus.to_string(RunStatus.SCHEDULED)):
            return None
        return status == RunStatus.to_string(RunStatus.FINISHED)

    def cancel(self) -> None:
        self.submitted.cancel()


class BackendLauncher(Launcher):
    def prepare(self) -> None:
        import mlflow

        # MLflow Projects creates the run in the process-wide tracking store: make it the sweep's.
        mlflow.set_tracking_uri(self.tracking_uri)

    def launch(self, request: TrialRequest) -> TrialHandle:
        import mlflow.projects

        self.ensure_prepared()
        submitted = mlflow.projects.run(
            uri=self.config.project,
            entry_point=self.config.entry_point,
            parameters={k: text(v) for k, v in request.params.items()},
            experiment_id=request.experiment_id,
            backend=self.config.backend,
            backend_config=self.config.backend_config,
            env_manager=self.config.env_manager,
            synchronous=False,
        )
        handle = SubmittedRunHandle(submitted)
        try:
            request.runs.adopt(handle.run_id)
        except BaseException:
            handle.cancel()  # a run we could not nest must not go on unaccounted for
            raise
        return handle
