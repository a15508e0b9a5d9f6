"""The runs' record of a sweep: its trial runs and their `sweeper.*` tags, with the parent run
(`parent.ParentRun`) at hand as `Recorder.parent`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from mlflow.entities import Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..command_line import value_text
from ..config import SweepConfig
from ..pruning import PRUNED_TAG
from ..secrets import redact
from ..storages import retry
from .lookup import every_experiment, find_experiment, get_or_create_experiment, runs_of_sweep
from .parent import ParentRun, chunks
from .tags import (
    ATTEMPT_TAG,
    MAX_PARAM_LENGTH,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    REPLACED_BY_TAG,
    TRIAL_TAG,
    sweep_tags,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunReading:
    """One read of a trial's run once its process has ended."""

    metrics: dict[str, float | None]  # the latest value of each objective metric, None if never logged
    ended_as: str | None  # the status the training code ended the run with; None while RUNNING
    logged: tuple[str, ...] = ()  # every metric the run logged (to name a near one when missing)


class Recorder:
    """A sweep's MLflow side in its experiment: the trial runs here, the parent as `parent`."""

    def __init__(self, client: MlflowClient, config: SweepConfig, experiment_id: str | None = None):
        self.client = client
        self.config = config
        if experiment_id is None:
            experiment_id = get_or_create_experiment(client, config.experiment)
        self.experiment_id = experiment_id
        self.parent = ParentRun(client, config, experiment_id)

    @classmethod
    def existing(cls, client: MlflowClient, config: SweepConfig) -> Recorder | None:
        """A recorder for delete and status: never creates the experiment."""
        experiment_id = find_experiment(client, config.experiment)
        return None if experiment_id is None else cls(client, config, experiment_id)

    # ---- trials ------------------------------------------------------------------------------

    def create_trial_run(
        self, parent_id: str, number: int, attempt: int, params: dict, extra_tags: dict[str, str]
    ) -> str:
        tags = sweep_tags(
            self.config.identity,
            "trial",
            **extra_tags,
            **{
                TRIAL_TAG: str(number),
                MLFLOW_PARENT_RUN_ID: parent_id,
                MLFLOW_RUN_NAME: self.trial_run_name(number),
                ATTEMPT_TAG: str(attempt),
            },
        )
        run = retry(lambda: self.client.create_run(self.experiment_id, tags=tags), "create trial run")
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def trial_run_name(self, number: int) -> str:
        """`<sweep_name>-<n>`: a trial's run reads as its sweep's in the MLflow UI, whoever made it."""
        return f"{self.config.sweep_name}-{number}"

    def adopt_run(
        self,
        run_id: str,
        parent_id: str,
        number: int,
        attempt: int,
        params: dict,
        extra_tags: dict[str, str] | None = None,
    ) -> None:
        """Nest a run that a remote backend created itself."""
        tags = sweep_tags(
            self.config.identity,
            "trial",
            **(extra_tags or {}),
            **{
                TRIAL_TAG: str(number),
                MLFLOW_PARENT_RUN_ID: parent_id,
                MLFLOW_RUN_NAME: self.trial_run_name(number),
                ATTEMPT_TAG: str(attempt),
            },
        )
        retry(lambda: self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()]), "adopt")
        # MLflow Projects logged the entry point's parameters already (paths resolved its way):
        # only what it did not log is added, since a logged param cannot change.
        logged = retry(lambda: self.client.get_run(run_id), "adopted run").data.params
        self.log_params(run_id, {k: v for k, v in params.items() if k not in logged})

    def log_params(self, run_id: str, params: dict) -> None:
        items = [Param(k, redact(value_text(v))[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for chunk in chunks(items):
            retry(lambda c=chunk: self.client.log_batch(run_id, params=c), "trial params")

    def tag_pruned(self, run_id: str) -> None:
        """`sweeper.pruned=true`: the run was stopped early by the pruner."""
        retry(lambda: self.client.set_tag(run_id, PRUNED_TAG, "true"), "pruned tag")

    def tag_infeasible(self, run_id: str, reason: str) -> None:
        """`sweeper.infeasible` = why: the point cannot run (out of memory, a non-finite objective)."""
        from ..triage import INFEASIBLE_TAG

        text = redact(reason)[:MAX_PARAM_LENGTH]
        retry(lambda: self.client.set_tag(run_id, INFEASIBLE_TAG, text), "infeasible tag")

    def end_trial_run(self, run_id: str, status: str, ended_as: str | None = None) -> None:
        """End the trial's run with `status`, unless its training code already ended it so
        (`ended_as`, from `read_run`): one round trip less per trial, and the run keeps the end
        time its code gave it."""
        if ended_as == status:
            return
        retry(lambda: self.client.set_terminated(run_id, status), "end trial run")

    def read_run(self, run_id: str, metrics: tuple[str, ...]) -> RunReading:
        """The latest value of each metric and how the run was ended, in one read of the run."""
        run = retry(lambda: self.client.get_run(run_id), "read run")
        info = run.info
        ended_as = info.status if info.status != "RUNNING" and info.end_time else None
        return RunReading(
            {name: run.data.metrics.get(name) for name in metrics}, ended_as, tuple(run.data.metrics)
        )

    def finished_by_its_code(self, run_id: str) -> bool:
        """Has the training code ended its run FINISHED (its process may still be exiting)?"""
        try:
            return self.client.get_run(run_id).info.status == "FINISHED"
        except Exception:  # noqa: BLE001 - unknown: as if not
            return False

    def attach_log(self, run_id: str, path: str) -> None:
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            return
        try:
            self.client.log_artifact(run_id, path)
        except Exception as exc:  # noqa: BLE001 - the log stays on disk
            log.debug("could not attach %s to run %s: %s", path, run_id, exc)

    def replace_run(self, old_run_id: str, new_run_id: str) -> None:
        """A retry replaced a failed run: end it if nobody did (its agent may have died), point it
        to the replacement, then soft-delete it."""
        self.kill_run(old_run_id, "FAILED")
        try:
            self.client.set_tag(old_run_id, REPLACED_BY_TAG, new_run_id)
            self.client.delete_run(old_run_id)
        except MlflowException as exc:
            log.debug("could not retire run %s: %s", old_run_id, exc)

    def kill_run(self, run_id: str | None, status: str = "KILLED", even_if_ended: bool = False) -> None:
        """End a run with `status` if nobody did; `even_if_ended`: also one its code ended (MLflow
        ends a run FINISHED at exit, even after an uncaught exception)."""
        if not run_id:
            return
        try:
            run = self.client.get_run(run_id)
            if even_if_ended or run.info.status in ("RUNNING", "SCHEDULED"):
                self.client.set_terminated(run_id, status)
        except MlflowException as exc:
            log.debug("could not end run %s: %s", run_id, exc)

    def delete_runs(self, run_ids: list[str]) -> None:
        """Soft-delete runs (restorable in the MLflow UI): the attempts of a sweep started over."""
        for run_id in run_ids:
            try:
                self.client.delete_run(run_id)
            except MlflowException as exc:  # already deleted, or gone with its experiment
                log.debug("could not delete run %s: %s", run_id, exc)

    # ---- the sweep's runs, for delete and status ----------------------------------------------

    def sweep_runs(self, view: int = ViewType.ACTIVE_ONLY, everywhere: bool = False) -> list:
        """The runs tagged with this sweep: in its experiment, or in every experiment (agent runs
        started by `mlflow run` live in whichever experiment that command used)."""
        experiment_ids = every_experiment(self.client) if everywhere else [self.experiment_id]
        return runs_of_sweep(self.client, experiment_ids, self.config.identity, view=view)
