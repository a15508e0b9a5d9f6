"""An agent: runs the trials of one sweep after another with up to `n_jobs` at once.

* `process`: the `Agent` (the process: signals, `--count`, one sweep after another).
* `opening`: `open_parts`, the parts of one agent on one sweep, built once when it opens.
* `parts`: `SweepParts`, what a session is built from (study, recorder, launcher, console, ...).
* `session`: `SweepSession`, one agent on one sweep: its start, its maintenance, its end.
* `workers`: `WorkerPool`, the `n_jobs` threads that claim trials and run them.
* `ending`: `SweepEnd`, the close when this agent ends the last trial, and the summary.
* `trial`: `TrialExecution`, one trial: launch, await, classify, settle; its `TrialContext`.
* `outcome`: the pure decision of how a trial ended.
* `settle`: an outcome made true everywhere, one function per kind (`SETTLERS`).
* `failures`: a failed attempt's log tail and `fail_fast` (`coordination.fail_fast`: the pure rule).
* `watch`: the early-stopping watch, or `NoWatch`.
* `stop`: `StopSignal` (Ctrl-C) and `StartBudget` (`--count`).
* `counts`, `idle`, `uploads`: the bar's counts, idle workers' backoff, trial logs' uploads.
* `maintenance`: heartbeats, the reclaim of stale trials, the re-queue of lost points.
* `result`: what a session ended with, and its exit code.
* `closing`: the close actions, run by the one agent the study elects.

Many agents may run the same sweep; coordination goes through the two storages only.
"""

from .closing import CLOSE_ACTIONS, CloseAction, CloseContext
from .outcome import Ending, Kind, Outcome, classify
from .parts import SweepParts
from .process import Agent
from .result import SweepResult
from .session import SweepSession
from .trial import TrialContext, TrialExecution

__all__ = [
    "CLOSE_ACTIONS",
    "Agent",
    "CloseAction",
    "CloseContext",
    "Ending",
    "Kind",
    "Outcome",
    "SweepParts",
    "SweepResult",
    "SweepSession",
    "TrialContext",
    "TrialExecution",
    "classify",
]
