"""Put a report where MLflow users look: artifacts under `report/` of the parent run and the
importances as its metrics. Also the one call that builds and logs a sweep's report."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlflow.entities import Metric

from ..config import SweepConfig
from ..config.folders import REPORTS, sweep_folder
from ..storages import retry
from .build import Report, build_report

logger = logging.getLogger(__name__)

ARTIFACT_DIR = "report"
METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


def default_report_dir(config: SweepConfig) -> Path:
    """`output_dir/reports/<experiment>_<sweep_name>/` (see `sweep_folder`)."""
    return sweep_folder(config.output_dir / REPORTS, config.identity)


def log_report(client, parent_run_id: str, report: Report) -> bool:
    """Log the report's files under `report/` and its metrics on the parent run.

    Returns False (after one log line) when it could not: a report never fails a sweep.
    """
    try:
        for path in report.files:
            retry(
                lambda p=path: client.log_artifact(parent_run_id, str(p), artifact_path=ARTIFACT_DIR),
                f"report artifact {path.name}",
            )
        now = int(time.time() * 1000)
        # At the step of the trials it read (as the best's metric): a sweep closed again after a
        # resume adds a point to each importance's history, and the same importances reported
        # again (`report --log` after the close) add none.
        logged = retry(lambda: client.get_run(parent_run_id), "read the parent").data.metrics
        metrics = [
            Metric(key, value, now, report.finished)
            for key, value in report.metrics().items()
            if logged.get(key) != value
        ]
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            chunk = metrics[start : start + METRICS_PER_BATCH]
            retry(lambda c=chunk: client.log_batch(parent_run_id, metrics=c), "report metrics")
    except Exception as exc:  # noqa: BLE001 - the sweep is complete either way
        logger.warning(
            "report: could not log the report to run %s: %s: %s", parent_run_id, type(exc).__name__, exc
        )
        return False
    return True


def publish_report(
    config: SweepConfig, trials, client, parent_run_id: str | None, out_dir: str | Path | None = None
) -> Report | None:
    """Build the report of `trials` and, given a parent run, log it there. Never raises: returns
    None when nothing could be built (a report never fails a sweep)."""
    try:
        report = build_report(config, trials, out_dir or default_report_dir(config))
    except Exception as exc:  # noqa: BLE001
        logger.warning(
            "report: could not build the report of %s: %s: %s", config.identity, type(exc).__name__, exc
        )
        return None
    if parent_run_id:
        log_report(client, parent_run_id, report)
    return report


def report_for_sweep(
    config: SweepConfig,
    study,
    recorder_or_client,
    out_dir: str | Path | None = None,
    log: bool = True,
) -> Report | None:
    """Build the report of a sweep from its study (a SweepStudy: `trials()`, `parent_run_id()`)
    and, with `log`, log it to the parent run through a Recorder or an MlflowClient. Never
    raises, returns None when nothing could be built."""
    parent = None
    if log:
        try:
            parent = study.parent_run_id()
        except Exception as exc:  # noqa: BLE001
            logger.warning("report: could not find the parent run of %s: %s", config.identity, exc)
    try:
        trials = study.trials()
    except Exception as exc:  # noqa: BLE001
        logger.warning("report: could not read the trials of %s: %s", config.identity, exc)
        return None
    client = getattr(recorder_or_client, "client", recorder_or_client)
    return publish_report(config, trials, client, parent, out_dir)
