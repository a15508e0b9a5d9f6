"""`entry_point` trials on the local backend, started by the agent itself.

MLflow Projects computes the entry point's command, its quoted parameters and its environment
(virtualenv, uv, conda); the agent starts that command in a new session, so a trial costs what
the bare command costs (no second `mlflow run` process) and its whole process tree can be
cancelled. The run is created by the agent with the tags MLflow Projects would give it.

The project is the one the agent's checks loaded (a git URI fetched once per agent); `path`
parameters resolve against it, and with `env_manager: local` the trial's `python` is the agent's.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .. import compat
from ..preflight import ProjectSource, check_project, trial_env_path
from .base import Launcher, TrialHandle, TrialRequest, text
from .process import ProcessHandle, popen, run_env


class LocalProjectLauncher(Launcher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.work_dir: str | None = None
        self.project = None
        self.env_prefix: list[str] = []
        self.run_tags: dict[str, str] = {}

    def prepare(self) -> None:
        if self.checked is None:  # a launcher built without the agent's checks: check now
            self.checked = check_project(self.config, ProjectSource(self.config.project))
        self.work_dir = self.checked.work_dir
        self.project = self.checked.project
        self.env_prefix = self._environment_prefix()
        self.run_tags = self._project_tags()

    def _project_tags(self) -> dict[str, str]:
        """The tags MLflow Projects puts on the run it creates for a local launch."""
        from mlflow.entities import SourceType

        tags = compat.mlflow_tags()
        result = {
            tags.MLFLOW_SOURCE_NAME: self.config.shown_project,
            tags.MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.PROJECT),
            tags.MLFLOW_PROJECT_ENTRY_POINT: self.config.entry_point,
            tags.MLFLOW_PROJECT_BACKEND: "local",
            tags.MLFLOW_PROJECT_ENV: self.config.env_manager,
        }
        commit = compat.git_commit(self.work_dir)
        if commit:
            result[tags.MLFLOW_GIT_COMMIT] = commit
        return result

    def _environment_prefix(self) -> list[str]:
        """The activation command MLflow's local backend would put before the entry point."""
        em = compat.env_managers()
        manager = self.config.env_manager
        if manager == em.LOCAL:
            return []
        if manager in (em.VIRTUALENV, em.UV):
            return [compat.virtualenv_activate_command(self.project, self.work_dir, manager)]
        return compat.conda_activate_command(self.project.env_config_path)

    def launch(self, request: TrialRequest) -> TrialHandle:
        self.ensure_prepared()
        entry = self.checked.entry_point
        params = self.checked.trial_parameters(request.params)
        storage_dir = Path(tempfile.mkdtemp(prefix="mlflow-sweeper-"))
        run_id = request.runs.create(self.run_tags)
        try:
            command = entry.compute_command({k: text(v) for k, v in params.items()}, str(storage_dir))
            command = " && ".join([*self.env_prefix, command])
            env = run_env(run_id, self.tracking_uri, request.experiment_id)
            env.update(request.env)
            if self.config.env_manager == "local":
                env = trial_env_path(env)
            process, output = popen(
                ["bash", "-c", command], self.work_dir, env, self.log_dir / request.log_name, request
            )
        except BaseException:
            shutil.rmtree(storage_dir, ignore_errors=True)
            raise
        return ProcessHandle(run_id, process, output, cleanup=storage_dir)
