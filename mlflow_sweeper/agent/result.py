"""What one agent's session on one sweep ended with, and the exit code it implies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import FrozenTrial

from ..display import shown_params
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from ..launch import trial_log_name


@dataclass
class SweepResult:
    identity: str
    finished: bool = False
    failed_for_good: list[str] = field(default_factory=list)
    error: str | None = None  # a trial could not be launched, or the agent had to stop
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when a trial failed for good or the agent had to stop, else 0.
        Computed from the trial list, so an agent that did not close the sweep exits alike."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed_for_good or self.error:
            return EXIT_FAILED
        return EXIT_OK


def describe_failures(failed: Iterable[FrozenTrial], log_dir: Path) -> list[str]:
    """One line per point that failed after all its retries: parameters, reason, run and log."""
    return [
        f"trial {trial.number} ({shown_params(trial.params)}): "
        f"{trial.user_attrs.get('fail_reason', 'failed')} "
        f"(run {trial.user_attrs.get('mlflow_run_id')}{_log_of(trial, log_dir)})"
        for trial in failed
    ]


def _log_of(trial: FrozenTrial, log_dir: Path) -> str:
    """The trial's log, when this agent's machine has one (a backend's trials log elsewhere)."""
    path = log_dir / trial_log_name(trial.number)
    return f", log {path}" if path.exists() else ""
