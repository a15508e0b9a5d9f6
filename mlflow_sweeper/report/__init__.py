"""The sweep report: trials.csv, an offline report.html, PNGs for the MLflow UI's preview and
`importance/<param>` metrics, built from a sweep's Optuna trials."""

from .build import PAGE, TRIALS_CSV, Report, build_report
from .publish import ARTIFACT_DIR, default_report_dir, log_report, report_for_sweep

__all__ = [
    "ARTIFACT_DIR",
    "PAGE",
    "TRIALS_CSV",
    "Report",
    "build_report",
    "default_report_dir",
    "log_report",
    "report_for_sweep",
]
