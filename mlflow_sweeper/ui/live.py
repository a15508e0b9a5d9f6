"""Writing the parent's description: once at the close, and while the sweep runs.

While it runs, an agent's own thread writes it: soon after a new best, otherwise at most every
`PERIOD` seconds and only when the counts moved, and never sooner than `SPACING` times what the
last write took (reading every trial grows with the sweep). A worker that settles a trial only
sets an event, so a busy sweep pays one read of the trials per period, never one per trial."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from ..coordination.target import REACHED_WORDS
from ..secrets import redact
from .description import DESCRIPTION_TAG, SweepView, describe

if TYPE_CHECKING:
    from ..config import SweepConfig
    from ..coordination import SweepStudy
    from ..progress import SweepProgress
    from ..record import Recorder

log = logging.getLogger(__name__)

PERIOD = 5.0  # seconds between two writes without a new best
BEST_GAP = 0.5  # a burst of new bests within this many seconds is written once
SPACING = 50  # a write that took t seconds is followed by none for SPACING * t: at most ~2% busy
MAX_LENGTH = 8000  # MLflow's longest tag value
JOIN_SECONDS = 10.0  # how long a leaving agent waits for its writer's thread to end


def read_view(
    config: SweepConfig, study: SweepStudy, experiment_id: str, parent_id: str, **known
) -> SweepView:
    """The sweep as the storages show it now, plus what the caller knows (`known`: SweepView's
    other fields)."""
    trials = study.trials()
    failed = [t for t in study.failed_for_good(trials) if t.state != TrialState.PRUNED]
    stopped = known.pop("stopped", None)
    if stopped is None and study.target_reached():
        stopped = REACHED_WORDS
    return SweepView(
        config, trials, experiment_id, parent_id, budget=study.budget, failed_for_good=len(failed),
        stopped=stopped, **known,
    )  # fmt: skip


def write_description(client, parent_id: str, view: SweepView) -> str:
    """Set the parent's description; returns the text written."""
    text = describe(view)
    if len(text) > MAX_LENGTH:
        cut = "\n\n(cut short: MLflow keeps at most 8000 characters; the report has it all)\n"
        text = text[: MAX_LENGTH - len(cut)] + cut
    text = redact(text)  # names in it (a metric's, say) may hold a value from `${VAR}`
    client.set_tag(parent_id, DESCRIPTION_TAG, text)
    return text


class LiveDescription:
    """One agent's writer of the parent's description while its workers run."""

    def __init__(
        self,
        config: SweepConfig,
        study: SweepStudy,
        recorder: Recorder,
        parent_id: str,
        progress: SweepProgress,
    ):
        self.config = config
        self.study = study
        self.recorder = recorder
        self.parent_id = parent_id
        self.progress = progress
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writing = threading.Lock()  # held while a write goes out
        self._written: tuple | None = None  # the counts the last write showed
        self._took = 0.0  # seconds the last write took (reading every trial grows with the sweep)
        self.writes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="description")
        self._thread.start()

    def new_best(self) -> None:
        """A worker found a new best: written within BEST_GAP seconds."""
        self._wake.set()

    def stop(self, state: str | None = None, why: str | None = None) -> None:
        """Stop writing, and write once more: the sweep as this agent leaves it with slots left
        (at `--count`, say), or `state` ("stopped", "interrupted") with `why`. An agent leaving a
        sweep whose slots are all taken does not: the agent that closes it writes the last word,
        and a write of this one's could land after it.

        Once this returns, no write of the thread's can land: one in flight is waited for (a
        write into a busy SQLite store may wait 20 s for its lock, longer than a join is worth
        waiting), and none starts after."""
        self._stop.set()
        self._wake.set()
        with self._writing:
            pass  # a write in flight ends; later ones see `_stop`
        if self._thread is not None:
            self._thread.join(timeout=JOIN_SECONDS)
        if state is not None:
            self.write(state=state, stopped=why)
        elif self._counts() != self._written and not self.study.exhausted_seen:
            self.write()

    def write(self, *, live: bool = False, **known) -> bool:
        """Write the description as the sweep is now, unless an agent is closing the sweep or
        has closed it: the closer's description is the last word, whichever agent comes after
        it. `live`: the thread's write, dropped once `stop()` was called. True when written."""
        started = time.monotonic()
        try:
            if self.study.close_begun():  # the closer's word is the last: the sweep not read for nothing
                return False
            view = read_view(self.config, self.study, self.recorder.experiment_id, self.parent_id, **known)
            with self._writing:
                if (live and self._stop.is_set()) or self.study.close_begun():
                    return False
                write_description(self.recorder.client, self.parent_id, view)
            self.writes += 1
            return True
        except Exception as exc:  # noqa: BLE001 - a description never stops a sweep
            log.debug("could not write the parent's description: %s", exc)
            return False
        finally:
            self._took = time.monotonic() - started

    def _counts(self) -> tuple:
        p = self.progress
        return (p.done, p.failed, p.pruned, p.running, p.best)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._stop.wait(SPACING * self._took):  # a slow read is not repeated at once
                return
            woken = self._wake.wait(max(0.0, PERIOD - SPACING * self._took))
            if self._stop.is_set():
                return
            if woken:
                self._wake.clear()
                time.sleep(BEST_GAP)  # bests found together are written together
            counts = self._counts()
            # the counts are written once the write lands: one dropped (the agent stopping) or
            # failed leaves them to `stop()`'s last write, or to the next period's
            if (woken or counts != self._written) and self.write(live=True):
                self._written = counts
