"""Launching one trial and holding a handle to it (wait, poll, cancel), like MLflow's backends.

* `base`: the contract: a `Launcher` turns a `TrialRequest` into a `TrialHandle` with a run id.
* `process`: local trial processes (`ProcessHandle`, `kill_tree`, `popen`, `run_env`);
  `trial_output`: their output, into the log directly or through a relay that masks secrets.
* `command`, `local_project`, `backend`: the three launchers.
* `dispatch`: which launcher a config uses (`make_launcher`).
"""

from .backend import BackendLauncher, SubmittedRunHandle
from .base import Launcher, TrialHandle, TrialRequest, TrialRuns, trial_log_name
from .command import CommandLauncher
from .dispatch import LAUNCHERS, launcher_class, make_launcher
from .local_project import LocalProjectLauncher
from .process import CANCEL_GRACE_SECONDS, ProcessHandle, kill_tree, popen, run_env

__all__ = [
    "CANCEL_GRACE_SECONDS",
    "LAUNCHERS",
    "BackendLauncher",
    "CommandLauncher",
    "Launcher",
    "LocalProjectLauncher",
    "ProcessHandle",
    "SubmittedRunHandle",
    "TrialHandle",
    "TrialRequest",
    "TrialRuns",
    "kill_tree",
    "launcher_class",
    "make_launcher",
    "popen",
    "run_env",
    "trial_log_name",
]
