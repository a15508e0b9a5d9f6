"""Watch running trials: their MLflow metric history becomes Optuna intermediate values, and the
pruner says whether to stop them.

The watch needs only a trial's Optuna id and its MLflow run id, so it works for every backend
(a local process, a Kubernetes job, a plugin's remote run) and for every agent: the pruner reads
the study from the shared storage, so it compares against the trials of all agents.

Cost: `check` is meant to be called at every poll of an agent's await loop; it reads a trial's
history at most once per `interval` seconds (the first read one interval after the trial is
first seen), so reads grow with the number of running trials only as the interval implies.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from ..storages import retry
from .registry import EarlyStopping

log = logging.getLogger(__name__)

PRUNED_TAG = "sweeper.pruned"
STORAGE_ATTEMPTS = 3  # the await loop must not stall long on a storage hiccup: retry at the next read


@dataclass
class _Seen:
    """What the watch knows of one running trial."""

    next_read: float
    last_step: int | None = None  # high-water mark: steps up to here are in Optuna already


class TrialWatch:
    """Turns running trials' metric histories into intermediate values and pruner verdicts.

    One per sweep and agent, shared by its worker threads. `check` for each poll of a running
    trial, `finish` when a trial ended by itself, `forget` when it ended otherwise.
    """

    def __init__(
        self,
        client,
        storage,
        study_name: str,
        metric: str,
        early_stopping: EarlyStopping,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.storage = storage
        self.study_name = study_name
        self.metric = metric
        self.interval = early_stopping.interval
        self.pruner = early_stopping.make_pruner()
        self.clock = clock
        self.reads: Counter[int] = Counter()  # metric histories read, per trial id
        self._seen: dict[int, _Seen] = {}
        self._lock = threading.Lock()  # guards _seen and reads
        self._prune_lock = threading.Lock()  # pruners keep state (brackets, rungs): one at a time
        self._study: optuna.Study | None = None

    # ---- the agent's calls ---------------------------------------------------------------------

    def check(self, trial_id: int, run_id: str) -> bool:
        """True when the pruner says to stop the trial now. Cheap between reads; never raises for
        a storage or tracking-server problem (logged, then tried again one interval later)."""
        seen = self._due(trial_id)
        if seen is None:
            return False
        try:
            return self._report(trial_id, seen, self._new_points(trial_id, run_id, seen), ask=True)
        except UpdateFinishedTrialError:
            self.forget(trial_id)  # ended elsewhere (e.g. reclaimed by another agent): nothing to ask
            return False
        except Exception as exc:  # noqa: BLE001 - pruning is best effort; the trial goes on
            log.warning("early stopping: could not check trial id %s (run %s): %s", trial_id, run_id, exc)
            return False

    def finish(self, trial_id: int, run_id: str) -> None:
        """Report the steps logged since the last read, whatever the interval, without asking the
        pruner; call before completing a trial, since pruners compare against complete trials'
        intermediate values (and Hyperband sizes its brackets from their last step)."""
        with self._lock:
            seen = self._seen.pop(trial_id, None) or _Seen(next_read=0.0)
        try:
            self._report(trial_id, seen, self._new_points(trial_id, run_id, seen), ask=False)
        except UpdateFinishedTrialError:
            pass
        except Exception as exc:  # noqa: BLE001 - the trial's own result matters more
            log.warning("early stopping: could not report the history of run %s: %s", run_id, exc)

    def forget(self, trial_id: int) -> None:
        """Drop what the watch knows of an ended trial."""
        with self._lock:
            self._seen.pop(trial_id, None)

    def watching(self) -> int:
        with self._lock:
            return len(self._seen)

    # ---- inside ----------------------------------------------------------------------------------

    def _due(self, trial_id: int) -> _Seen | None:
        """The trial's state when a read is due now (and the next one scheduled), else None."""
        now = self.clock()
        with self._lock:
            seen = self._seen.get(trial_id)
            if seen is None:
                self._seen[trial_id] = _Seen(next_read=now + self.interval)
                return None
            if now < seen.next_read:
                return None
            seen.next_read = now + self.interval
            return seen

    def _new_points(self, trial_id: int, run_id: str, seen: _Seen) -> list[tuple[int, float]]:
        """The history's steps above the high-water mark, in step order: for a step logged more
        than once the latest value, NaN values skipped."""
        history = retry(
            lambda: self.client.get_metric_history(run_id, self.metric),
            "read metric history",
            attempts=STORAGE_ATTEMPTS,
        )
        with self._lock:
            self.reads[trial_id] += 1
        latest: dict[int, tuple[int, int, float]] = {}
        for order, point in enumerate(history):
            value = float(point.value)
            if math.isnan(value):
                continue
            step, key = int(point.step), (int(point.timestamp or 0), order, value)
            if step not in latest or key > latest[step]:
                latest[step] = key
        floor = seen.last_step
        return [(step, latest[step][2]) for step in sorted(latest) if floor is None or step > floor]

    def _report(self, trial_id: int, seen: _Seen, points: list[tuple[int, float]], *, ask: bool) -> bool:
        """Report each new step, asking the pruner after each one as `trial.should_prune()` would
        after `trial.report()`; True at the first step the pruner stops the trial."""
        for step, value in points:
            retry(
                lambda s=step, v=value: self.storage.set_trial_intermediate_value(trial_id, s, v),
                "report intermediate value",
                attempts=STORAGE_ATTEMPTS,
            )
            seen.last_step = step
            if ask and self._ask(trial_id):
                return True
        return False

    def _ask(self, trial_id: int) -> bool:
        with self._prune_lock:
            trial = retry(lambda: self.storage.get_trial(trial_id), "read trial", attempts=STORAGE_ATTEMPTS)
            if trial.state != TrialState.RUNNING:
                return False
            return bool(self.pruner.prune(self._loaded_study(), trial))

    def _loaded_study(self) -> optuna.Study:
        """The sweep's study, loaded once: pruners read every agent's trials through it."""
        if self._study is None:
            self._study = retry(
                lambda: optuna.load_study(
                    study_name=self.study_name, storage=self.storage, sampler=optuna.samplers.RandomSampler()
                ),
                "load study",
                attempts=STORAGE_ATTEMPTS,
            )
        return self._study


def pruned_values(trial: FrozenTrial) -> list[float] | None:
    """What Optuna records as a pruned trial's value: its last intermediate value, unless NaN."""
    step = trial.last_step
    if step is None:
        return None
    value = trial.intermediate_values[step]
    return None if math.isnan(value) else [float(value)]


def tell_pruned(storage, trial_id: int) -> bool:
    """Mark a running trial PRUNED as `study.tell(trial, state=PRUNED)` would; False when it had
    already ended (e.g. reclaimed by another agent)."""
    trial = retry(lambda: storage.get_trial(trial_id), "read trial")
    if trial.state != TrialState.RUNNING:
        return False
    try:
        retry(
            lambda: storage.set_trial_state_values(trial_id, TrialState.PRUNED, pruned_values(trial)),
            "tell pruned",
        )
    except UpdateFinishedTrialError:
        return False
    return True
