"""A dead agent's trial whose run had finished: its result is kept, not run again.

A local trial runs in a session of its own, so it outlives an agent killed with SIGKILL (or
lost with its terminal). When it ends well before another agent reclaims it, its MLflow run
says so (FINISHED, with its metrics), though nobody told Optuna. The reclaiming agent reads
that run as the trial's own agent would have (`ResultReader`), and, when the result is a
result, completes the trial with it and settles the rest (the run's tags, the parent's best,
the console): the point does not run twice. A run that says nothing final (still RUNNING: the
exit status went with the agent; FAILED, KILLED) is reclaimed as before, and run again.

What the trial left on this host (its processes, its unscrubbed log) is cleared either way, by
`Leftovers`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial

from ..config import SweepConfig
from ..coordination import RUN_ATTR, SLOT, Work
from ..launch import trial_log_name
from ..launch.process import kill_tree, orphaned_trial
from ..trial_log import scrub
from .reading import ResultReader
from .settle import Attempt, Settling, settle_adopted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leftovers:
    """What a dead agent's trial left on this host: the roots of its process trees still running,
    and its log (never scrubbed of hidden values by its agent)."""

    pids: tuple[int, ...]
    log_path: Path

    @classmethod
    def of(cls, config: SweepConfig, trial: FrozenTrial) -> Leftovers:
        run_id = trial.user_attrs.get(RUN_ATTR)
        return cls(tuple(orphaned_trial(run_id)), config.log_dir / trial_log_name(trial.number))

    @property
    def note(self) -> str:
        return "; stopping its processes left on this host" if self.pids else ""

    def clear(self) -> None:
        for pid in self.pids:
            kill_tree(pid)  # no point runs twice at once on this host
        scrub(self.log_path)


class FinishedOrphans:
    """Adopts, for the maintenance pass, the stale trials whose runs had finished."""

    def __init__(self, settling: Settling, reader: ResultReader):
        self.settling = settling
        self.reader = reader

    def adopt(self, trial: FrozenTrial, why: str) -> bool:
        """True when the trial's finished run gave it its result here, or another agent ended the
        trial meanwhile; False to reclaim it as a dead agent's (failed, then run again)."""
        run_id = trial.user_attrs.get(RUN_ATTR)
        if not run_id or SLOT not in trial.system_attrs:
            return False
        config = self.settling.config
        log_path = config.log_dir / trial_log_name(trial.number)
        try:
            verdict = self.reader.of_finished_run(run_id, log_path)
        except Exception as exc:  # noqa: BLE001 - the run cannot be read: reclaimed as before
            log.debug("could not read run %s of trial %s: %s", run_id, trial.number, exc)
            return False
        if verdict is None or not verdict.outcome.complete:
            return False
        leftovers = Leftovers.of(config, trial)
        leftovers.clear()  # before its log is attached: its writers gone, its hidden values scrubbed
        attempt = Attempt(Work.of(trial), run_id, log_path, verdict.ended_as, verdict.judgement)
        if settle_adopted(self.settling, attempt, verdict.outcome, why):
            self.settling.recorder.attach_log(run_id, str(log_path))
        return True


class NoAdoption:
    """Adopts nothing: every stale trial is reclaimed and run again."""

    def adopt(self, trial: FrozenTrial, why: str) -> bool:
        return False


NO_ADOPTION = NoAdoption()
