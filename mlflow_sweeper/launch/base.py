"""The launcher contract, shaped like MLflow's `AbstractBackend` and `SubmittedRun`.

A launcher receives a `TrialRequest` and returns a `TrialHandle` whose `run_id` is always set.
How the trial's MLflow run comes to be is the launcher's business: a local launcher asks the
request's `runs` to create it before starting the process; a backend that creates its own run
hands it to `runs.adopt`, which nests and tags it. The agent never needs to know which.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..command_line import value_text
from ..config import SweepConfig

if TYPE_CHECKING:
    from ..preflight import CheckedProject


def trial_log_name(number: int) -> str:
    """The file, in the sweep's log directory, that holds a trial's stdout and stderr."""
    return f"trial-{number}.log"


class TrialRuns(Protocol):
    """The recorder's side of a launch: the only two ways a trial's run may come to exist."""

    def create(self, tags: dict[str, str]) -> str:
        """Create the trial's run, nested under the parent with the trial's params; its id."""

    def adopt(self, run_id: str) -> None:
        """Nest and tag a run that a backend created itself, and log the trial's params on it."""


@dataclass(frozen=True)
class TrialRequest:
    """Everything a launcher needs to start one attempt of one trial."""

    number: int
    attempt: int
    experiment_id: str
    params: dict
    runs: TrialRuns
    # Variables the trial's process gets besides MLflow's: SWEEPER_TRIAL, SWEEPER_ATTEMPT,
    # SWEEPER_RESUME_RUN_ID and its devices (`device_env`), set by local launchers.
    env: dict[str, str] = field(default_factory=dict)
    keep_fds: tuple[int, ...] = ()  # descriptors the trial's process inherits: its device locks
    hidden_values: tuple[str, ...] = ()  # its parameter values from `${VAR}`, as it gets them
    shown_params: dict | None = None  # its parameters as the sweep shows them (None: `params`)

    @property
    def log_name(self) -> str:
        return trial_log_name(self.number)


class TrialHandle(ABC):
    """A launched trial: poll it, wait for it, cancel it. `run_id` is always set."""

    run_id: str
    pid: int | None = None  # the local process tree's root, when there is one

    @property
    def returncode(self) -> int | None:
        """The exit code when the trial was a local process that ended; None otherwise."""
        return None

    @abstractmethod
    def poll(self) -> bool | None:
        """None while running, else whether it succeeded."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the trial and everything it started."""

    def wait(self, timeout: float) -> bool | None:
        """Wait up to `timeout` seconds; None while running, else whether it succeeded."""
        time.sleep(timeout)
        return self.poll()

    def close(self) -> None:
        """Release what the launch held (log files, temp dirs)."""


class Launcher(ABC):
    """Starts the trials of one sweep."""

    # Connections to the agent's MLflow store that each running trial's launch may hold from
    # threads of its own, outside the agent's turns: the store's pool leaves room for them.
    store_connections_per_trial = 0

    def __init__(
        self,
        config: SweepConfig,
        tracking_uri: str,
        log_dir: Path,
        checked: CheckedProject | None = None,
        store_turn: Callable[[], AbstractContextManager] | None = None,
    ):
        self.config = config
        self.tracking_uri = tracking_uri
        self.log_dir = log_dir
        self.checked = checked  # the project as the agent's checks loaded it (entry_point trials)
        # A turn at the agent's MLflow store, for MLflow calls made outside the agent's client.
        self.store_turn = store_turn or nullcontext
        self._prepared = False
        self._prepare_lock = threading.Lock()

    def prepare(self) -> None:
        """Once per sweep, before the first trial (build the environment). The project was checked
        before anything was written; what fails here is a launch failure (exit 1)."""

    def ensure_prepared(self) -> None:
        """`prepare` once, by the first trial that needs it (so a failure is that trial's launch
        failure, with its run ended and its point re-queued)."""
        with self._prepare_lock:
            if not self._prepared:
                self.prepare()
                self._prepared = True

    @abstractmethod
    def launch(self, request: TrialRequest) -> TrialHandle:
        """Start one trial; the handle's `run_id` names the trial's run, created or adopted through
        `request.runs`. May raise (a bad entry point, a backend refusing the job)."""


def text(value: Any) -> str:
    """Parameter values as the trial sees them (one rule, in `command_line.value_text`)."""
    return value_text(value)
