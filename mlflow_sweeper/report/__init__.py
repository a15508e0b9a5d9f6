"""The sweep report: trials.csv, an offline report.html, PNGs for the MLflow UI's preview and
`importance/<param>` metrics, built from a sweep's Optuna trials.

Names are imported on first use: plotting libraries load only when a report is built, so a
command that merely reads `report.publish` stays quick to start.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PAGE": ".build",
    "TRIALS_CSV": ".build",
    "Report": ".build",
    "build_report": ".build",
    "ARTIFACT_DIR": ".publish",
    "default_report_dir": ".publish",
    "log_report": ".publish",
    "publish_report": ".publish",
    "report_for_sweep": ".publish",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
