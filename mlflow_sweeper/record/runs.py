"""The runs' record of a sweep: its parent and trial runs and their `sweeper.*` tags."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass

from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..config import SweepConfig
from ..pruning import PRUNED_TAG
from ..secrets import redact
from ..storages import retry

log = logging.getLogger(__name__)

SWEEP_TAG = "sweeper.sweep"
ROLE_TAG = "sweeper.role"
TRIAL_TAG = "sweeper.trial"
BEST_RUN_TAG = "sweeper.best_run_id"
REPLACED_BY_TAG = "sweeper.replaced_by"
ATTEMPT_TAG = "sweeper.attempt"
PARETO_TAG = "sweeper.pareto"  # "true" on trial runs on the Pareto front (several objectives)
PARETO_RUNS_TAG = "sweeper.pareto_run_ids"  # on the parent: the front's run ids, comma-separated
STOPPED_TAG = "sweeper.stopped"  # on the parent: why the sweep stopped early ("target")
STARTED_OVER_TAG = "sweeper.started_over"  # on the parent: how often the sweep started over
# MLflow's documented system tags (`mlflow.utils.mlflow_tags` is not public API).
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MAX_PARAM_LENGTH = 6000
BATCH = 100


@dataclass(frozen=True)
class RunReading:
    """One read of a trial's run once its process has ended."""

    metrics: dict[str, float | None]  # the latest value of each objective metric, None if never logged
    ended_as: str | None  # the status the training code ended the run with; None while RUNNING
    logged: tuple[str, ...] = ()  # every metric the run logged (to name a near one when missing)


def _chunks(items: list, size: int = BATCH):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Recorder:
    def __init__(self, client: MlflowClient, config: SweepConfig, experiment_id: str | None = None):
        self.client = client
        self.config = config
        self.experiment_id = experiment_id if experiment_id is not None else self._experiment_id()

    @classmethod
    def existing(cls, client: MlflowClient, config: SweepConfig) -> Recorder | None:
        """A recorder for delete and status: never creates the experiment."""
        experiment = retry(lambda: client.get_experiment_by_name(config.experiment), "experiment")
        return None if experiment is None else cls(client, config, experiment.experiment_id)

    def _experiment_id(self) -> str:
        """Get or create the experiment; two agents creating it at once both succeed."""
        name = self.config.experiment

        def get_or_create() -> str:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                return experiment.experiment_id
            try:
                return self.client.create_experiment(name)
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" in str(exc.error_code) or "already exists" in str(exc):
                    experiment = self.client.get_experiment_by_name(name)
                    if experiment is not None:
                        return experiment.experiment_id
                raise

        return retry(get_or_create, "experiment", also=lambda e: "already exists" in str(e).lower())

    def _tags(self, role: str, **extra: str) -> dict[str, str]:
        return {SWEEP_TAG: self.config.identity, ROLE_TAG: role, **extra}

    # ---- parent ----------------------------------------------------------------------------

    def create_parent(self) -> str:
        tags = self._tags("parent", **{MLFLOW_RUN_NAME: self.config.sweep_name})
        run = retry(lambda: self.client.create_run(self.experiment_id, tags=tags), "create parent")
        run_id = run.info.run_id
        params = [Param(k, redact(v)[:MAX_PARAM_LENGTH]) for k, v in self.config.as_params().items()]
        for chunk in _chunks(params):
            retry(lambda c=chunk: self.client.log_batch(run_id, params=c), "parent params")
        try:
            shown = redact(self.config.path.read_text(encoding="utf-8"))
            self.client.log_text(run_id, shown, f"sweep/{self.config.path.name}")
        except Exception as exc:  # noqa: BLE001 - the config is also in params
            log.warning("could not store the config as an artifact of the parent run: %s", exc)
        return run_id

    def parent_state(self, run_id: str) -> str:
        """'ok' or 'missing'; a parent deleted in the UI is restored, since the sweep lives on."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return "missing"
            raise
        if run.info.lifecycle_stage == "deleted":
            retry(lambda: self.client.restore_run(run_id), "restore parent")
        return "ok"

    def set_parent_status(self, parent_id: str, finished: bool) -> None:
        run = retry(lambda: self.client.get_run(parent_id), "parent")
        wanted = RunStatus.to_string(RunStatus.FINISHED if finished else RunStatus.RUNNING)
        if run.info.status == wanted:
            return
        if finished:
            retry(lambda: self.client.set_terminated(parent_id, "FINISHED"), "finish parent")
        else:
            retry(lambda: self.client.update_run(parent_id, status="RUNNING"), "reopen parent")

    def record_best(
        self, parent_id: str, run_id: str, value: float, *, step: int = 0, force: bool = False
    ) -> bool:
        """Put the best trial on the parent when `value` beats what the parent shows: a new point
        of the objective's metric at `step` (the trials ended when it became the best), so the
        parent's chart of it is the best-so-far curve. Agents racing to write agree on each
        point's step (`tallies.best_so_far_step`), so a late write lands where it belongs. `force`
        (the close) points the tag at `run_id` even when the value does not beat the parent's:
        no lower point."""
        metric = self.config.objective.metric
        if metric is None or value is None or math.isnan(value):
            return False
        parent = retry(lambda: self.client.get_run(parent_id), "parent")
        current = parent.data.metrics.get(metric)
        current_run = parent.data.tags.get(BEST_RUN_TAG)
        if current_run == run_id and current == value:
            return False
        maximize = self.config.objective.direction == "maximize"
        better = current is None or current_run is None or (value > current if maximize else value < current)
        if not better and not force:
            return False
        metrics = []
        if better:
            metrics = [Metric(metric, value, int(time.time() * 1000), step)]
        retry(
            lambda: self.client.log_batch(parent_id, metrics=metrics, tags=[RunTag(BEST_RUN_TAG, run_id)]),
            "best",
        )
        return True

    def record_pareto(self, parent_id: str, front: list[str]) -> None:
        """Tag the Pareto front's runs (and only them) and list them on the parent.

        Runs tagged by an earlier close that left the front lose the tag, so re-running the
        close after more trials gives the same tags as closing once."""
        on_front = set(front)
        tagged = self.sweep_runs_tagged(PARETO_TAG, "true")
        for run_id in sorted(set(tagged) - on_front):
            try:
                self.client.delete_tag(run_id, PARETO_TAG)
            except MlflowException as exc:
                log.debug("could not untag run %s: %s", run_id, exc)
        for run_id in front:
            if run_id not in tagged:
                retry(lambda r=run_id: self.client.set_tag(r, PARETO_TAG, "true"), "pareto tag")
        retry(lambda: self.client.set_tag(parent_id, PARETO_RUNS_TAG, ",".join(front)), "pareto runs")

    def update_pareto(self, joined: str | None, left: list[str]) -> None:
        """Mid-sweep: `joined` is on the Pareto front so far, the runs in `left` no longer are."""
        for run_id in left:
            try:
                self.client.delete_tag(run_id, PARETO_TAG)
            except MlflowException as exc:  # never tagged (another agent's view), or gone
                log.debug("could not untag run %s: %s", run_id, exc)
        if joined:
            retry(lambda: self.client.set_tag(joined, PARETO_TAG, "true"), "pareto tag")

    def sweep_runs_tagged(self, tag: str, value: str) -> list[str]:
        """Run ids of this sweep's runs whose tag `tag` is `value`."""
        filter_string = (
            f"tags.`{SWEEP_TAG}` = '{_quote(self.config.identity)}' and tags.`{tag}` = '{_quote(value)}'"
        )
        runs = _all_pages(
            lambda t: self.client.search_runs(
                [self.experiment_id], filter_string, max_results=1000, page_token=t
            )
        )
        return [run.info.run_id for run in runs]

    def record_stopped(self, parent_id: str, why: str) -> None:
        retry(lambda: self.client.set_tag(parent_id, STOPPED_TAG, redact(why)), "stopped tag")

    def record_parent_metrics(self, parent_id: str, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, 0) for name, value in metrics.items()]
        for chunk in _chunks(batch):
            retry(lambda c=chunk: self.client.log_batch(parent_id, metrics=c), "parent metrics")

    # ---- trials ------------------------------------------------------------------------------

    def create_trial_run(
        self, parent_id: str, number: int, attempt: int, params: dict, extra_tags: dict[str, str]
    ) -> str:
        tags = self._tags(
            "trial",
            **extra_tags,
            **{
                TRIAL_TAG: str(number),
                MLFLOW_PARENT_RUN_ID: parent_id,
                MLFLOW_RUN_NAME: f"{self.config.sweep_name}-{number}",
                ATTEMPT_TAG: str(attempt),
            },
        )
        run = retry(lambda: self.client.create_run(self.experiment_id, tags=tags), "create trial run")
        self.log_params(run.info.run_id, params)
        return run.info.run_id

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
        tags = self._tags(
            "trial",
            **(extra_tags or {}),
            **{TRIAL_TAG: str(number), MLFLOW_PARENT_RUN_ID: parent_id, ATTEMPT_TAG: str(attempt)},
        )
        retry(lambda: self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()]), "adopt")
        # MLflow Projects logged the entry point's parameters already (paths resolved its way):
        # only what it did not log is added, since a logged param cannot change.
        logged = retry(lambda: self.client.get_run(run_id), "adopted run").data.params
        self.log_params(run_id, {k: v for k, v in params.items() if k not in logged})

    def log_params(self, run_id: str, params: dict) -> None:
        items = [Param(k, redact(str(v))[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for chunk in _chunks(items):
            retry(lambda c=chunk: self.client.log_batch(run_id, params=c), "trial params")

    def tag_pruned(self, run_id: str) -> None:
        """`sweeper.pruned=true`: the run was stopped early by the pruner."""
        retry(lambda: self.client.set_tag(run_id, PRUNED_TAG, "true"), "pruned tag")

    def tag_infeasible(self, run_id: str, reason: str) -> None:
        """`sweeper.infeasible` = why: the point cannot run (out of memory, a non-finite objective)."""
        from ..triage import INFEASIBLE_TAG

        text = reason[:MAX_PARAM_LENGTH]
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

    def kill_run(self, run_id: str | None, status: str = "KILLED") -> None:
        if not run_id:
            return
        try:
            run = self.client.get_run(run_id)
            if run.info.status in ("RUNNING", "SCHEDULED"):
                self.client.set_terminated(run_id, status)
        except MlflowException as exc:
            log.debug("could not end run %s: %s", run_id, exc)

    def started_over(self, parent_id: str, generation: int) -> None:
        """The sweep started over under a changed config: the parent's params (which MLflow never
        lets change) are the first config's; its `sweep/` config artifact and a tag say the current."""
        retry(lambda: self.client.set_tag(parent_id, STARTED_OVER_TAG, str(generation)), "tag parent")
        try:
            self.client.log_artifact(parent_id, str(self.config.path), artifact_path="sweep")
        except Exception as exc:  # noqa: BLE001 - the tag says it started over
            log.warning("could not store the new config as an artifact of the parent run: %s", exc)

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
        experiment_ids = [self.experiment_id]
        if everywhere:
            experiment_ids = [
                e.experiment_id
                for e in _all_pages(
                    lambda t: self.client.search_experiments(
                        view_type=ViewType.ALL, max_results=1000, page_token=t
                    )
                )
            ]
        filter_string = f"tags.`{SWEEP_TAG}` = '{_quote(self.config.identity)}'"
        runs = []
        for start in range(0, len(experiment_ids), 100):
            ids = experiment_ids[start : start + 100]
            runs.extend(
                _all_pages(
                    lambda t, ids=ids: self.client.search_runs(
                        ids, filter_string, run_view_type=view, max_results=1000, page_token=t
                    )
                )
            )
        return runs


def _all_pages(fetch) -> list:
    items, token = [], None
    while True:
        page = retry(lambda t=token: fetch(t), "search")
        items.extend(page)
        token = page.token
        if not token:
            return items


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
