"""What one agent's session on one sweep is built from, once, when the sweep opens.

Each part has one job and a narrow interface; a trial's execution, the maintenance thread and the
close each take the parts they use, never the session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import SweepConfig
from ..coordination import SweepStudy
from ..devices import DevicePool, NoDevicePool
from ..launch import Launcher
from ..preflight import CheckedProject
from ..progress import Reporter, SweepProgress
from ..pruning import TrialWatch
from ..record import Recorder
from ..ui.live import LiveDescription
from .counts import SweepCounts
from .result import SweepResult
from .stop import StopSignal
from .uploads import LogUploads
from .watch import NoWatch


@dataclass(frozen=True)
class SweepParts:
    config: SweepConfig
    study: SweepStudy  # the sweep's Optuna side: claims, tells, the close's election
    recorder: Recorder  # the sweep's MLflow side: parent and trial runs
    parent_id: str
    launcher: Launcher
    console: Reporter  # events, the bar, the summary
    stop: StopSignal  # Ctrl-C or SIGTERM
    progress: SweepProgress
    counts: SweepCounts  # what the bar counts
    checked: CheckedProject | None  # the entry point's project, as checked before anything was written
    watch: TrialWatch | NoWatch  # early stopping
    uploads: LogUploads  # trial logs attached to their runs
    devices: DevicePool | NoDevicePool  # this host's devices, one group per running trial
    result: SweepResult  # what this agent's session ends with
    description: LiveDescription  # the parent's description, kept current while the workers run

    @property
    def log_dir(self) -> Path:
        return self.config.log_dir
