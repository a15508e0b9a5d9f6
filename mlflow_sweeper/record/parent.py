"""The sweep's parent run: created once, reopened and finished, and the summary it carries (the
best trial as a best-so-far curve, the Pareto front, why the sweep stopped, a restart)."""

from __future__ import annotations

import logging
import math
import time

from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..config import SweepConfig
from ..secrets import redact
from ..storages import retry
from .lookup import runs_of_sweep
from .tags import (
    BEST_RUN_TAG,
    CONFIG_DIGEST_TAG,
    MAX_PARAM_LENGTH,
    MLFLOW_RUN_NAME,
    OPTUNA_STORAGE_TAG,
    PARETO_RUNS_TAG,
    PARETO_TAG,
    STARTED_OVER_TAG,
    STOPPED_TAG,
    config_digest,
    digest,
    optuna_storage_id,
    sweep_tags,
)

log = logging.getLogger(__name__)
BATCH = 100  # MLflow's most params or metrics in one log_batch
CONFIG_FOLDER = "sweep"  # the parent's artifact folder holding the config file


def chunks(items: list, size: int = BATCH):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _not_found(exc: MlflowException) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower()


def run_exists(client: MlflowClient, run_id: str) -> bool:
    """Is the run in this store (deleted or not)? A read only."""
    return found_run(client, run_id) is not None


def found_run(client: MlflowClient, run_id: str) -> Run | None:
    """The run, deleted or not; None when it is not in this store. A read only."""
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise


def parent_state(client: MlflowClient, run_id: str) -> str:
    """'ok' or 'missing'; a parent deleted in the UI is restored, since the sweep lives on."""
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if _not_found(exc):
            return "missing"
        raise
    if run.info.lifecycle_stage == "deleted":
        retry(lambda: client.restore_run(run_id), "restore parent")
    return "ok"


class ParentRun:
    """The parent run of one sweep in its experiment."""

    def __init__(self, client: MlflowClient, config: SweepConfig, experiment_id: str):
        self.client, self.config, self.experiment_id = client, config, experiment_id

    def create(self) -> str:
        """A new parent run: the config as params (redacted) and as the artifact `sweep/<file>`."""
        storage = optuna_storage_id(self.config.optuna_storage)
        extra = {MLFLOW_RUN_NAME: self.config.sweep_name, OPTUNA_STORAGE_TAG: storage}
        tags = sweep_tags(self.config.identity, "parent", **extra)
        run = retry(lambda: self.client.create_run(self.experiment_id, tags=tags), "create parent")
        run_id = run.info.run_id
        params = [Param(k, redact(v)[:MAX_PARAM_LENGTH]) for k, v in self.config.as_params().items()]
        for chunk in chunks(params):
            retry(lambda c=chunk: self.client.log_batch(run_id, params=c), "parent params")
        self._store_config(run_id)
        return run_id

    def _shown_config(self) -> str | None:
        """The config file as the parent shows it: redacted (a password written in a URL)."""
        try:
            return redact(self.config.path.read_text(encoding="utf-8"))
        except OSError as exc:
            log.warning("could not read the config %s: %s", self.config.path, exc)
            return None

    def _store_config(self, run_id: str, shown: str | None = None, replacing: bool = False) -> None:
        """The config as the artifact `sweep/<file>`, with its digest as a tag. `replacing`: the
        parent holds one already, whose name it keeps (a config resumed under another file name
        would leave two, and which one is current?)."""
        shown = shown if shown is not None else self._shown_config()
        if shown is None:
            return
        try:
            path = self._stored_config_path(run_id) if replacing else None
            self.client.log_text(run_id, shown, path or f"{CONFIG_FOLDER}/{self.config.path.name}")
            said = config_digest(shown)
            retry(lambda: self.client.set_tag(run_id, CONFIG_DIGEST_TAG, said), "config digest")
        except Exception as exc:  # noqa: BLE001 - the config is also in params
            log.warning("could not store the config as an artifact of the parent run: %s", exc)

    def _stored_config_path(self, run_id: str) -> str | None:
        """The config artifact the parent holds (this file's name when several are there)."""
        listed = self.client.list_artifacts(run_id, CONFIG_FOLDER)
        stored = [entry.path for entry in listed if not entry.is_dir]
        mine = f"{CONFIG_FOLDER}/{self.config.path.name}"
        return mine if mine in stored else next(iter(sorted(stored)), None)

    def keep_config_current(self, run_id: str, tags: dict[str, str]) -> bool:
        """An agent resuming the sweep with a config that changed where a sweep may change (its
        `command`, retries, timeouts) stores it: the `sweep/` artifact is the config the sweep
        runs under now. The params stay the first config's (MLflow never lets a param change).
        True when what the config says changed (a parent made before digests were kept gets one,
        unsaid); a comment or the layout is no change. (Digests of the text, kept before, still read.)"""
        shown = self._shown_config()
        stored = tags.get(CONFIG_DIGEST_TAG)
        if shown is None or stored in (config_digest(shown), digest(shown)):
            return False
        self._store_config(run_id, shown, replacing=True)
        return stored is not None

    def state(self, run_id: str) -> str:
        return parent_state(self.client, run_id)

    def set_status(self, parent_id: str, finished: bool) -> None:
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

    def record_pareto(self, parent_id: str, front: list[str], own: list[str]) -> None:
        """Tag the Pareto front's runs of this sweep (`own`: not earlier results a warm start
        brought in, which belong to other sweeps) and list the whole front on the parent.

        Runs tagged by an earlier close that left the front lose the tag, so re-running the
        close after more trials gives the same tags as closing once."""
        on_front = set(own)
        tagged = {
            run.info.run_id
            for run in runs_of_sweep(
                self.client, [self.experiment_id], self.config.identity, tag=(PARETO_TAG, "true")
            )
        }
        self.update_pareto(None, sorted(tagged - on_front))
        for run_id in own:
            if run_id not in tagged:
                retry(lambda r=run_id: self.client.set_tag(r, PARETO_TAG, "true"), "pareto tag")
        if front:
            retry(lambda: self.client.set_tag(parent_id, PARETO_RUNS_TAG, ",".join(front)), "pareto runs")
            return
        try:  # no front (no feasible trial): no tag, rather than an empty one
            self.client.delete_tag(parent_id, PARETO_RUNS_TAG)
        except MlflowException as exc:  # never set
            log.debug("no %s to remove from the parent: %s", PARETO_RUNS_TAG, exc)

    def update_pareto(self, joined: str | None, left: list[str]) -> None:
        """Mid-sweep: `joined` is on the Pareto front so far, the runs in `left` no longer are."""
        for run_id in left:
            try:
                self.client.delete_tag(run_id, PARETO_TAG)
            except MlflowException as exc:  # never tagged (another agent's view), or gone
                log.debug("could not untag run %s: %s", run_id, exc)
        if joined:
            retry(lambda: self.client.set_tag(joined, PARETO_TAG, "true"), "pareto tag")

    def record_stopped(self, parent_id: str, why: str) -> None:
        retry(lambda: self.client.set_tag(parent_id, STOPPED_TAG, redact(why)), "stopped tag")

    def clear_stopped(self, parent_id: str) -> None:
        """No early stop (any more): a tag an earlier close wrote goes."""
        try:
            retry(lambda: self.client.delete_tag(parent_id, STOPPED_TAG), "stopped tag")
        except MlflowException as exc:
            if not _not_found(exc):
                raise

    def record_metrics(self, parent_id: str, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, 0) for name, value in metrics.items()]
        for chunk in chunks(batch):
            retry(lambda c=chunk: self.client.log_batch(parent_id, metrics=c), "parent metrics")

    def started_over(self, parent_id: str, generation: int) -> None:
        """The sweep started over under a changed config: the parent's params (which MLflow never
        lets change) are the first config's; its `sweep/` config artifact and a tag say the current."""
        retry(lambda: self.client.set_tag(parent_id, STARTED_OVER_TAG, str(generation)), "tag parent")
        self._store_config(parent_id, replacing=True)
