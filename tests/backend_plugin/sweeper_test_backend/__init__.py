"""A test MLflow Projects backend, registered under the `mlflow.project_backend` entry point group.

It behaves like a remote backend (kubernetes, databricks): it creates the run itself, as MLflow's
remote backends do (source tags and every parameter of the entry point), queues the job
(`SCHEDULED` for `backend_config["schedule_delay"]` seconds), runs the entry point in a process
session of its own, and ends the run when the job ends. Cancelling kills the job's whole process
tree and marks the run `KILLED`. With `backend_config["numeric_status"]`, `get_status()` returns
`RunStatus` numbers, as MLflow's kubernetes backend does, instead of their names.

It is found without installing anything: `tests/backend_plugin` holds a `.dist-info` directory with
the entry point, so putting that directory on PYTHONPATH registers the backend `sweeper-test`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from mlflow.entities import Param, RunStatus
from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun
from mlflow.tracking import MlflowClient

BACKEND_TAG = "sweeper_test_backend.job"


class TestJob(SubmittedRun):
    """One submitted entry point: SCHEDULED, then RUNNING in its own session, then ended."""

    def __init__(
        self, client, run_id, command, work_dir, env, delay, log_path, storage_dir=None, numeric=False
    ):
        self.client = client
        self._numeric = numeric
        self._storage_dir = storage_dir  # the job's scratch directory, removed when it ends
        self._run_id = run_id
        self._status = RunStatus.SCHEDULED
        self._lock = threading.Lock()
        self._cancelled = False
        self._process = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(command, work_dir, env, delay, log_path), daemon=True
        )
        self._thread.start()

    @property
    def run_id(self):
        return self._run_id

    def _run(self, command, work_dir, env, delay, log_path):
        try:
            self._run_job(command, work_dir, env, delay, log_path)
        finally:
            if self._storage_dir:
                shutil.rmtree(self._storage_dir, ignore_errors=True)

    def _run_job(self, command, work_dir, env, delay, log_path):
        time.sleep(delay)
        with self._lock:
            if self._cancelled:
                self._done.set()
                return
            with open(log_path, "ab") as log:
                self._process = subprocess.Popen(
                    ["bash", "-c", command], cwd=work_dir, env=env, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            self._status = RunStatus.RUNNING
            self.client.update_run(self._run_id, status="RUNNING")
        code = self._process.wait()
        with self._lock:
            if not self._cancelled:
                self._status = RunStatus.FINISHED if code == 0 else RunStatus.FAILED
                self.client.set_terminated(self._run_id, RunStatus.to_string(self._status))
        self._done.set()

    def wait(self):
        self._done.wait()
        return self._status == RunStatus.FINISHED

    def get_status(self):
        return self._status if self._numeric else RunStatus.to_string(self._status)

    def cancel(self):
        with self._lock:
            self._cancelled = True
            self._status = RunStatus.KILLED
            process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.client.set_terminated(self._run_id, "KILLED")
        self._done.wait(timeout=10)


class SweeperTestBackend(AbstractBackend):
    def run(self, project_uri, entry_point, params, version, backend_config, tracking_uri, experiment_id):
        from mlflow.projects.utils import fetch_and_validate_project, load_project

        work_dir = fetch_and_validate_project(project_uri, version, entry_point, params)
        project = load_project(work_dir)
        entry = project.get_entry_point(entry_point)
        client = MlflowClient(tracking_uri=tracking_uri)
        run = client.create_run(
            experiment_id,
            tags={
                "mlflow.source.name": str(project_uri),
                "mlflow.source.type": "PROJECT",
                "mlflow.project.entryPoint": entry_point,
                BACKEND_TAG: "submitted",
            },
        )
        run_id = run.info.run_id
        final, extra = entry.compute_parameters(params, storage_dir=None)
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in {**final, **extra}.items()])
        storage_dir = tempfile.mkdtemp(prefix="sweeper-test-backend-")
        command = entry.compute_command(params, storage_dir)
        env = dict(os.environ)
        env.pop("MLFLOW_EXPERIMENT_NAME", None)
        env.update(
            MLFLOW_RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_EXPERIMENT_ID=str(experiment_id)
        )
        delay = float((backend_config or {}).get("schedule_delay", 0.2))
        log_path = (backend_config or {}).get("log_path") or os.path.join(storage_dir, "job.log")
        numeric = bool((backend_config or {}).get("numeric_status"))
        return TestJob(client, run_id, command, work_dir, env, delay, log_path, storage_dir, numeric)


def build():
    return SweeperTestBackend()
