"""`delete` and `status`: one sweep at a time, touching nothing that belongs to another sweep."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

from mlflow.entities import ViewType

from . import compat
from .algorithms import PointSource
from .config import SweepConfig
from .coordination import RUN_ATTR, SweepStudy, agent_id, study_names
from .record import Recorder
from .storages import exists as storage_exists
from .storages import (
    mask,
    open_mlflow_tracking,
    open_optuna_storage,
    probe_mlflow_storage,
    probe_optuna_storage,
    retry,
)

log = logging.getLogger(__name__)


def _file_backed_storage_missing(url: str) -> bool:
    """A SQLite or journal file that does not exist holds no sweep; do not create it to find out."""
    return not storage_exists(url)


def _open_study(config: SweepConfig) -> SweepStudy | None:
    if _file_backed_storage_missing(config.optuna_storage):
        return None
    probe_optuna_storage(config.optuna_storage)
    study = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), agent_id())
    return study if study.find() else None


def _open_recorder(config: SweepConfig) -> Recorder | None:
    import mlflow

    uri = config.mlflow_storage or mlflow.get_tracking_uri()
    if _file_backed_storage_missing(uri):
        return None
    probe_mlflow_storage(uri)
    return Recorder.existing(open_mlflow_tracking(uri), config)


@dataclass
class DeleteResult:
    identity: str
    study_deleted: bool
    runs_deleted: int
    purged: bool

    def message(self) -> str:
        if not self.study_deleted and not self.runs_deleted:
            return f"{self.identity}: no such sweep, nothing to delete"
        how = "permanently deleted" if self.purged else "deleted (restorable in the MLflow UI)"
        study = "its Optuna study and " if self.study_deleted else ""
        return f"{self.identity}: {study}{self.runs_deleted} MLflow run(s) {how}"


def delete_sweep(config: SweepConfig, purge: bool = False) -> DeleteResult:
    study_deleted = False
    study = _open_study(config)
    if study is not None:
        for name in study_names(config.identity):
            try:
                study_id = retry(lambda n=name: study.storage.get_study_id_from_name(n), "find study")
            except KeyError:
                continue
            retry(lambda s=study_id: study.storage.delete_study(s), f"delete study {name}")
            study_deleted = True
    runs_deleted = 0
    recorder = _open_recorder(config)
    if recorder is not None:
        runs = recorder.sweep_runs(ViewType.ALL if purge else ViewType.ACTIVE_ONLY, everywhere=True)
        can_purge = purge and compat.can_hard_delete(recorder.client)
        if purge and not can_purge:
            log.warning(
                "%s cannot purge runs through a tracking server; they are soft-deleted "
                "(run `mlflow gc` on the server to purge)",
                mask(recorder.client.tracking_uri),
            )
        for run in runs:
            run_id = run.info.run_id
            if run.info.lifecycle_stage != "deleted":
                retry(lambda r=run_id: recorder.client.delete_run(r), "delete run")
            if can_purge:
                _delete_artifacts(run.info.artifact_uri)
                retry(lambda r=run_id: compat.hard_delete_run(recorder.client, r), "purge run")
            runs_deleted += 1
        purge = can_purge
    shutil.rmtree(config.log_dir, ignore_errors=True)
    return DeleteResult(config.identity, study_deleted, runs_deleted, purge)


def _delete_artifacts(artifact_uri: str) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        get_artifact_repository(artifact_uri).delete_artifacts()
    except Exception as exc:  # noqa: BLE001 - the run itself is still purged
        log.debug("could not delete artifacts at %s: %s", artifact_uri, exc)


def sweep_status(config: SweepConfig) -> str:
    lines = [config.identity]
    study = _open_study(config)
    if study is None:
        lines.append("  not started")
        return "\n".join(lines)
    progress = study.progress()
    parent = study.parent_run_id()
    recorder = _open_recorder(config)
    parent_state = ""
    if parent and recorder is not None:
        try:
            parent_state = f" ({recorder.client.get_run(parent).info.status})"
        except Exception:  # noqa: BLE001
            parent_state = " (not found in MLflow)"
    lines.append(f"  parent run: {parent or '-'}{parent_state}")
    lines.append(
        f"  trials: {progress.complete}/{progress.budget} done, {progress.running} running, "
        f"{progress.failed_for_good} failed, {progress.remaining} remaining"
    )
    best = progress.best
    if best is not None:
        params = ", ".join(f"{k}={v}" for k, v in best.params.items())
        lines.append(
            f"  best: {config.objective.metric}={best.value:.6g} in trial {best.number} "
            f"(run {best.user_attrs.get(RUN_ATTR, '-')}): {params}"
        )
    else:
        lines.append("  best: -")
    return "\n".join(lines)
