"""The early-stopping watch of one agent on one sweep, built once when the sweep opens.

With `early_stopping`, a `TrialWatch` shared by the agent's workers (it needs only run ids and
the shared Optuna storage, so it works for every backend and compares against every agent's
trials); without it, a watch that never stops a trial, so the await loop has one path."""

from __future__ import annotations

from ..config import SweepConfig
from ..coordination import SweepStudy
from ..pruning import TrialWatch
from ..record import Recorder


class NoWatch:
    """No `early_stopping`: no trial is ever stopped by a pruner."""

    def check(self, trial_id: int, run_id: str) -> bool:
        return False

    def finish(self, trial_id: int, run_id: str) -> None:
        pass

    def forget(self, trial_id: int) -> None:
        pass


def watch_for(config: SweepConfig, recorder: Recorder, study: SweepStudy) -> TrialWatch | NoWatch:
    if config.early_stopping is None:
        return NoWatch()
    return TrialWatch(
        recorder.client, study.storage, config.identity, config.objective.metric, config.early_stopping
    )
