"""What a dead agent's trials left: results kept, trials watched to their end, re-runs owed.

A local trial runs in a session of its own, so it outlives an agent killed outright (`kill -9`,
the OOM killer). When another agent's maintenance pass finds such a stale trial:

- its run already says FINISHED (ended by its training code, or by its agent as it settled): the
  run is read as the trial's own agent would have read it (`ResultReader`) and, when that is a
  result, the trial is completed with it (`settle_adopted`): the point does not run twice;
- its processes still run on this host, in a sweep whose trials log an objective (so their end
  can be read from their runs): the agent watches them, beating for the trial meanwhile, and
  settles the trial as above once they exit; a trial past `trial_timeout` is stopped first. A
  long training run is not thrown away because its agent died;
- otherwise (its run says nothing final, a sweep without an objective, a trial its agent quit
  at once): it is failed and re-queued, and what it left on this host is stopped.

Several agents may do this for one trial at once: RUNNING -> COMPLETE and RUNNING -> FAIL are
the elections, so exactly one settles it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial

from .. import compat
from ..config import SweepConfig
from ..coordination import RUN_ATTR, SLOT, Work
from ..coordination.names import QUIT
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


@dataclass(frozen=True)
class Watched:
    """A dead agent's trial whose processes run on here: why its agent counts as gone."""

    trial: FrozenTrial
    why: str


class Orphans:
    """The maintenance pass's handling of the trials dead agents left (see the module)."""

    def __init__(self, settling: Settling, reader: ResultReader):
        self.settling = settling
        self.reader = reader
        self.watched: dict[int, Watched] = {}  # by Optuna trial id; the maintenance thread's own

    def watched_ids(self) -> set[int]:
        """The trials this agent beats for besides its own: the orphans it watches."""
        return set(self.watched)

    def adopt(self, trial: FrozenTrial, why: str) -> bool:
        """Offered each stale trial before it is failed: True when its result was kept, it is
        watched, or another agent ended it meanwhile; False to fail it and run it again."""
        if not trial.user_attrs.get(RUN_ATTR) or SLOT not in trial.system_attrs:
            return False
        leftovers = Leftovers.of(self.settling.config, trial)
        if leftovers.pids and self._watchable(trial):
            self.watched[compat.trial_id(trial)] = Watched(trial, why)
            self.settling.console.event(
                f"trial {trial.number}: {why}, but it runs on here: watched, its result is kept "
                "when it ends"
            )
            return True
        return self._adopt_finished(trial, why, leftovers)

    def check_watched(self) -> None:
        """Settle each watched trial whose processes have exited; stop one past `trial_timeout`
        first, and fail it."""
        config = self.settling.config
        for trial_id, watched in list(self.watched.items()):
            trial, why = watched.trial, watched.why
            leftovers = Leftovers.of(config, trial)
            overdue = _overdue(trial, config.trial_timeout)
            if leftovers.pids and not overdue:
                continue
            del self.watched[trial_id]
            if overdue:
                self.reclaim(trial, f"{why}; it ran on here past trial_timeout ({config.trial_timeout:g} s)")
            elif not self._adopt_finished(trial, why, leftovers):
                self.reclaim(trial, f"{why}; it ran on here, but its run did not finish")

    def reclaim(self, trial: FrozenTrial, why: str) -> None:
        """Fail a watched trial and re-queue its point, when no other agent ended it first."""
        requeued = self.settling.study.reclaim_trial(trial, why)
        if requeued is not None:
            self.reclaimed(trial, why, requeued)

    def reclaimed(self, trial: FrozenTrial, why: str, requeued: bool) -> None:
        """A stale trial this agent failed: said, what it left on this host stopped, its run ended."""
        leftovers = Leftovers.of(self.settling.config, trial)
        then = "re-queued" if requeued else "failed for good"
        # said first: once they exit, their devices are free and a worker may start the re-run
        # while they are waited for and the run is ended
        self.settling.console.event(f"trial {trial.number} reclaimed: {why}; {then}{leftovers.note}")
        leftovers.clear()
        status = "KILLED" if trial.system_attrs.get(QUIT) else "FAILED"
        self.settling.recorder.kill_run(trial.user_attrs.get(RUN_ATTR), status)

    def _watchable(self, trial: FrozenTrial) -> bool:
        """Only where its end can be read: a sweep with an objective, whose trials log it to their
        run, which MLflow ends as their code exits; and not a trial its agent quit at once (a
        second Ctrl-C: the user wanted it stopped)."""
        return bool(self.reader.objective_names) and not trial.system_attrs.get(QUIT)

    def _adopt_finished(self, trial: FrozenTrial, why: str, leftovers: Leftovers) -> bool:
        """Keep the result of a trial whose run says it finished; False when it does not."""
        run_id = str(trial.user_attrs[RUN_ATTR])
        try:
            verdict = self.reader.of_finished_run(run_id, leftovers.log_path)
        except Exception as exc:  # noqa: BLE001 - the run cannot be read: reclaimed as before
            log.debug("could not read run %s of trial %s: %s", run_id, trial.number, exc)
            return False
        if verdict is None or not verdict.outcome.complete:
            return False
        leftovers.clear()  # before its log is attached: its writers gone, its hidden values scrubbed
        attempt = Attempt(Work.of(trial), run_id, leftovers.log_path, verdict.ended_as, verdict.judgement)
        if settle_adopted(self.settling, attempt, verdict.outcome, why):
            self.settling.recorder.attach_log(run_id, str(leftovers.log_path))
        return True


def _overdue(trial: FrozenTrial, timeout: float | None) -> bool:
    """Has the trial run longer than `trial_timeout` (its start as Optuna recorded it)?"""
    if timeout is None or trial.datetime_start is None:
        return False
    return (dt.datetime.now() - trial.datetime_start).total_seconds() > timeout
