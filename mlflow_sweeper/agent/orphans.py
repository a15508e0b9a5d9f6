"""What a dead agent's trials left: results kept, trials watched to their end, re-runs owed.

A local trial runs in a session of its own, so it outlives an agent killed outright (`kill -9`,
the OOM killer), and its exit status is kept beside its log (`launch/exit_status.py`). When
another agent's maintenance pass finds such a stale trial:

- its processes still run on this host: the agent watches them, beating for the trial, until
  they exit (stopping them at `trial_timeout`), then settles it as below. A long training run is
  not thrown away because its agent died;
- it has ended, and its exit status is here: it is settled as its own agent would have settled
  it (`ResultReader`: its run read, the outcome classified, triaged, its constraints judged). A
  result completes the trial (`settle_adopted`), so the point does not run twice; a failure
  fails it, re-queued when another attempt may cure it;
- otherwise (it ran on another host, or its status is lost, or its agent quit at once): it is
  failed and re-queued, and what it left on this host is stopped.

Several agents may do this for one trial at once: RUNNING -> COMPLETE and RUNNING -> FAIL are
the elections, so exactly one settles it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial

from .. import compat
from ..config import SweepConfig
from ..coordination import RUN_ATTR, SLOT, Work
from ..coordination.names import QUIT
from ..launch import trial_log_name
from ..launch.exit_status import read_exit_status
from ..launch.process import kill_tree, orphaned_trial
from ..pruning import TrialWatch
from ..trial_log import scrub
from .outcome import Ending, Kind
from .reading import ResultReader
from .settle import Attempt, Settling, settle_adopted
from .watch import NoWatch

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

    def __init__(self, settling: Settling, reader: ResultReader, watch: TrialWatch | NoWatch):
        self.settling = settling
        self.reader = reader
        self.watch = watch  # early stopping: an adopted trial's history is reported too
        self.watched: dict[int, Watched] = {}  # by Optuna trial id; the maintenance thread's own

    def watched_ids(self) -> set[int]:
        """The trials this agent beats for besides its own: the orphans it watches."""
        return set(self.watched)

    def adopt(self, trial: FrozenTrial, why: str) -> bool:
        """Offered each stale trial before it is failed: True when it is watched or settled here
        (or another agent ended it meanwhile); False to fail it and run it again."""
        try:
            return self._adopt(trial, why)
        except Exception as exc:  # noqa: BLE001 - a store failing: reclaimed as before (a trial
            # this agent completed already stays so: the FAIL update then loses)
            log.warning("trial %s: could not settle what its dead agent left: %s", trial.number, exc)
            return False

    def check_watched(self) -> None:
        """Settle each watched trial whose processes have exited; stop one past `trial_timeout`
        first, and fail it."""
        config = self.settling.config
        for trial_id, watched in list(self.watched.items()):
            trial, why = watched.trial, watched.why
            leftovers = Leftovers.of(config, trial)
            overdue = _overdue(trial, config.trial_timeout, time.time())
            if leftovers.pids and not overdue:
                continue
            del self.watched[trial_id]
            if overdue:
                self.reclaim(trial, f"{why}; it ran on here past trial_timeout ({config.trial_timeout:g} s)")
            elif not self.adopt(trial, f"{why}; it ran on here"):
                self.reclaim(trial, f"{why}; it ran on here, and how it ended is unknown")

    def reclaim(
        self,
        trial: FrozenTrial,
        why: str,
        retry: bool = True,
        infeasible: str | None = None,
        failed: bool = False,
    ) -> None:
        """Fail the trial and re-queue its point, when no other agent ended it first. `failed`:
        its exit status says it failed, so its run is FAILED even if its code ended it."""
        requeued = self.settling.study.reclaim_trial(trial, why, retry=retry, infeasible=infeasible)
        if requeued is None:
            return
        run_id = trial.user_attrs.get(RUN_ATTR)
        if infeasible is not None and run_id:
            self.settling.recorder.tag_infeasible(run_id, infeasible)
        self.reclaimed(trial, why, requeued if retry else None, failed)

    def reclaimed(
        self, trial: FrozenTrial, why: str, requeued: bool | None, failed: bool = False
    ) -> None:
        """A stale trial this agent failed: said, what it left on this host stopped, its run ended.
        `requeued` None: not retried on purpose."""
        leftovers = Leftovers.of(self.settling.config, trial)
        then = "not retried" if requeued is None else "re-queued" if requeued else "failed for good"
        # said first: once they exit, their devices are free and a worker may start the re-run
        # while they are waited for and the run is ended
        self.settling.console.event(f"trial {trial.number} reclaimed: {why}; {then}{leftovers.note}")
        leftovers.clear()
        status = "KILLED" if trial.system_attrs.get(QUIT) else "FAILED"
        self.settling.recorder.kill_run(trial.user_attrs.get(RUN_ATTR), status, even_if_ended=failed)

    # ---- inside ----------------------------------------------------------------------------------

    def _adopt(self, trial: FrozenTrial, why: str) -> bool:
        if not trial.user_attrs.get(RUN_ATTR) or SLOT not in trial.system_attrs:
            return False
        if trial.system_attrs.get(QUIT):
            return False  # its agent quit at once (a second Ctrl-C): the user wanted it stopped
        leftovers = Leftovers.of(self.settling.config, trial)
        if leftovers.pids:
            self.watched[compat.trial_id(trial)] = Watched(trial, why)
            self.settling.console.event(
                f"trial {trial.number}: {why}, but it runs on here: watched, its result is kept "
                "when it ends"
            )
            return True
        return self._settle_ended(trial, why, leftovers)

    def _settle_ended(self, trial: FrozenTrial, why: str, leftovers: Leftovers) -> bool:
        """A trial that has ended, settled from its exit status as its agent would have settled
        it; False when the status is not here."""
        config, run_id = self.settling.config, str(trial.user_attrs[RUN_ATTR])
        status = read_exit_status(leftovers.log_path, run_id)
        if status is None:
            return False
        leftovers.clear()  # before its log is read or attached: scrubbed of hidden values
        if _overdue(trial, config.trial_timeout, status.ended):
            self.reclaim(trial, f"{why}; it ran past trial_timeout ({config.trial_timeout:g} s)", failed=True)
            return True
        ending = Ending(succeeded=status.code == 0, exit_code=status.code)
        verdict = self.reader.verdict(ending, run_id, leftovers.log_path)
        outcome = verdict.outcome
        if not outcome.complete:
            reason = f"{why}; its trial had ended: {outcome.reason}"
            infeasible = None
            if outcome.kind is Kind.INFEASIBLE:  # named for what it says, as `settle_infeasible` does
                infeasible = (outcome.reason or "infeasible").removeprefix("infeasible: ")
            # a broken setup is found again by the re-run, which stops the sweep as it should
            retry = outcome.retry or outcome.kind is Kind.SETUP
            self.reclaim(trial, reason, retry and infeasible is None, infeasible, failed=True)
            return True
        self.watch.finish(compat.trial_id(trial), run_id)  # its history, before it completes
        attempt = Attempt(Work.of(trial), run_id, leftovers.log_path, verdict.ended_as, verdict.judgement)
        if settle_adopted(self.settling, attempt, outcome, why):
            self.settling.recorder.attach_log(run_id, str(leftovers.log_path))
        return True


def _overdue(trial: FrozenTrial, timeout: float | None, at: float) -> bool:
    """Had the trial run longer than `trial_timeout` at `at` (seconds since the epoch)?"""
    if timeout is None or trial.datetime_start is None:
        return False
    return at - trial.datetime_start.timestamp() > timeout
