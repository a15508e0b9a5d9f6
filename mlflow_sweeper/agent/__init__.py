"""An agent: runs the trials of one sweep after another with up to `n_jobs` at once.

* `process`: the `Agent` (the process: signals, `--count`, one sweep after another).
* `session`: `SweepSession`, one agent on one sweep: its workers, its end.
* `trial`: `TrialExecution`, one trial: launch, await, classify, settle.
* `outcome`: the pure decision of how a trial ended.
* `maintenance`: heartbeats, the reclaim of stale trials, the re-queue of lost points.
* `result`: what a session ended with, and its exit code.
* `closing`: the close actions, run by the one agent the study elects.

Many agents may run the same sweep; coordination goes through the two storages only.
"""

from .closing import CLOSE_ACTIONS, CloseAction, CloseContext
from .outcome import Ending, Kind, Outcome, classify
from .process import Agent
from .result import SweepResult
from .session import SweepSession
from .trial import TrialExecution

__all__ = [
    "CLOSE_ACTIONS",
    "Agent",
    "CloseAction",
    "CloseContext",
    "Ending",
    "Kind",
    "Outcome",
    "SweepResult",
    "SweepSession",
    "TrialExecution",
    "classify",
]
