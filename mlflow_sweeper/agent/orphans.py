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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from optuna.trial import FrozenTrial

from .. import compat
from ..config import SweepConfig
from ..coordination import RUN_ATTR, SLOT, Work
from ..coordination.names import LOG_DIR, QUIT
from ..coordination.tallies import INTERRUPTED_PREFIX
from ..launch import trial_log_name
from ..launch.exit_status import ExitStatus, read_exit_status
from ..launch.process import kill_tree, orphaned_trial
from ..launch.trial_output import relay_finished
from ..pruning import TrialWatch
from ..trial_log import scrub
from .outcome import Ending, Kind
from .reading import ResultReader
from .settle import Attempt, Settling, settle_adopted
from .uploads import LogUploads
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
        """Its log where its agent wrote it: that agent's `output_dir` may not be this one's."""
        run_id = trial.user_attrs.get(RUN_ATTR)
        log_dir = Path(str(trial.system_attrs.get(LOG_DIR) or config.log_dir))
        return cls(tuple(orphaned_trial(run_id)), log_dir / trial_log_name(trial.number))

    @property
    def note(self) -> str:
        return "; stopping its processes left on this host" if self.pids else ""

    def clear(self) -> None:
        for pid in self.pids:
            kill_tree(pid)  # no point runs twice at once on this host
        relay_finished(self.log_path)  # its last lines written (where secrets pass a relay)
        scrub(self.log_path)


@dataclass(frozen=True)
class Watched:
    """A dead agent's trial whose processes run on, on this host: why its agent counts as gone."""

    trial: FrozenTrial
    why: str


class Orphans:
    """The maintenance pass's handling of the trials dead agents left (see the module)."""

    def __init__(
        self,
        settling: Settling,
        reader: ResultReader,
        watch: TrialWatch | NoWatch,
        uploads: LogUploads,
        settled: Callable[[], None] = lambda: None,
    ):
        self.settling = settling
        self.reader = reader
        self.watch = watch  # early stopping: an adopted trial's history is reported too
        self.uploads = uploads  # its log attached off the maintenance thread (which beats)
        self.settled = settled  # told when a trial is settled here: idle workers look again now
        self.watched: dict[int, Watched] = {}  # by Optuna trial id; the maintenance thread's own
        self._stopped: set[int] = set()  # trials whose processes here were stopped before re-queuing

    def watched_ids(self) -> set[int]:
        """The trials this agent beats for besides its own: the orphans it watches."""
        return set(self.watched)

    def watching(self) -> int:
        """How many dead agents' trials run on here, watched: each takes one of `-j`'s places."""
        return len(self.watched)

    def adopt(self, trial: FrozenTrial, why: str) -> bool:
        """Offered each stale trial before it is failed: True when it is watched or settled here
        (or another agent ended it meanwhile); False to fail it and run it again, once what it
        left running on this host has stopped."""
        if self._guarded(trial, lambda: self._adopt(trial, why)):
            return True
        self._stop_leftovers(trial)
        return False

    def _stop_leftovers(self, trial: FrozenTrial) -> None:
        """Stop what the trial left running on this host before its point is re-queued: a worker
        may start the re-run at once, and no point runs twice at once (a trial that ignores
        SIGTERM is killed after the grace period)."""
        leftovers = Leftovers.of(self.settling.config, trial)
        if leftovers.pids:
            self._stopped.add(compat.trial_id(trial))
        leftovers.clear()

    @staticmethod
    def _guarded(trial: FrozenTrial, settle: Callable[[], bool]) -> bool:
        """`settle()`, or False when it fails: the trial is then reclaimed as before (one this
        agent completed already stays so: the FAIL update then loses)."""
        try:
            return settle()
        except Exception as exc:  # noqa: BLE001 - a store failing
            log.warning("trial %s: could not settle what its dead agent left: %s", trial.number, exc)
            return False

    def check_watched(self, leaving: bool = False) -> None:
        """Settle each watched trial that has ended (its exit status is here, or its processes are
        gone); stop one past `trial_timeout` first, and fail it. `leaving`: this agent stops, so
        one still running is stopped and its point re-queued as interrupted, as this agent's own
        are: left unwatched, it would be reclaimed elsewhere and run again beside itself."""
        config = self.settling.config
        for trial_id, watched in list(self.watched.items()):
            trial, why = watched.trial, watched.why
            leftovers = Leftovers.of(config, trial)
            if not self.settling.study.is_running(trial_id):  # another agent ended it meanwhile
                self.watched.pop(trial_id, None)
                leftovers.clear()
                self.settled()  # its place is free
                continue
            status = read_exit_status(leftovers.log_path, str(trial.user_attrs[RUN_ATTR]))
            overdue = _overdue(trial, config.trial_timeout, time.time())
            if status is None and leftovers.pids and not overdue and not leaving:
                continue
            self.watched.pop(trial_id, None)
            ran_on = f"{why}; it ran on, on this host"
            if status is not None or not leftovers.pids:
                ended = status is not None and self._guarded(
                    trial, partial(self._settle_ended, trial, ran_on, leftovers, status)
                )
                if not ended:  # unknown only without its exit status (else it could not be settled)
                    how = "how it ended is unknown" if status is None else "it could not be settled"
                    self.reclaim(trial, f"{ran_on}, and {how}", agent_lost=status is None)
            elif overdue:
                timeout = f"{config.trial_timeout:g} s"
                self.reclaim(trial, f"{ran_on}, past trial_timeout ({timeout})", status="KILLED")
            else:
                stopped = f"{INTERRUPTED_PREFIX}: the agent watching it stopped"
                self.reclaim(trial, stopped, again=True, status="KILLED")  # as its own trials end

    def reclaim(
        self,
        trial: FrozenTrial,
        why: str,
        retry: bool = True,
        again: bool = False,
        infeasible: str | None = None,
        status: str | None = None,
        agent_lost: bool = False,
    ) -> bool:
        """Fail the trial and re-queue its point, when no other agent ended it first (True). `status`:
        how its run ends, even if its code ended it (its exit status says otherwise); `agent_lost`:
        how it ended is unknown."""
        study = self.settling.study
        self._stop_leftovers(trial)
        requeued = study.reclaim_trial(
            trial, why, retry=retry, again=again, infeasible=infeasible, agent_lost=agent_lost
        )
        if requeued is None:
            return False
        run_id = trial.user_attrs.get(RUN_ATTR)
        if infeasible is not None and run_id:
            self.settling.recorder.tag_infeasible(run_id, infeasible)
        self.reclaimed(trial, why, requeued if retry else None, status)
        return True

    def reclaimed(
        self, trial: FrozenTrial, why: str, requeued: bool | None, status: str | None = None
    ) -> None:
        """A stale trial this agent failed: said, what it left on this host stopped, its run ended.
        `requeued` None: not retried on purpose."""
        leftovers = Leftovers.of(self.settling.config, trial)
        then = "not retried" if requeued is None else "re-queued" if requeued else "failed for good"
        stopped = compat.trial_id(trial) in self._stopped
        self._stopped.discard(compat.trial_id(trial))
        note = "; its processes left on this host stopped" if stopped else leftovers.note
        self.settling.console.event(f"trial {trial.number} reclaimed: {why}; {then}{note}")
        leftovers.clear()  # its log relayed to its end and scrubbed (its processes stopped before)
        run_id = trial.user_attrs.get(RUN_ATTR)
        if status is not None:
            self.settling.recorder.kill_run(run_id, status, even_if_ended=True)
        else:
            self.settling.recorder.kill_run(run_id, "KILLED" if trial.system_attrs.get(QUIT) else "FAILED")
        self.settled()  # its re-run waits in the queue

    # ---- inside ----------------------------------------------------------------------------------

    def _adopt(self, trial: FrozenTrial, why: str) -> bool:
        run_id = trial.user_attrs.get(RUN_ATTR)
        if not run_id or SLOT not in trial.system_attrs:
            return False
        if trial.system_attrs.get(QUIT):
            return False  # its agent quit at once (a second Ctrl-C): the user wanted it stopped
        leftovers = Leftovers.of(self.settling.config, trial)
        status = read_exit_status(leftovers.log_path, str(run_id))
        if status is None and leftovers.pids:
            self.watched[compat.trial_id(trial)] = Watched(trial, why)
            self.settling.console.event(
                f"trial {trial.number}: {why}, but its process still runs on this host: watched, "
                "its result is kept when it ends"
            )
            return True
        if status is None:
            return False
        return self._settle_ended(trial, why, leftovers, status)

    def _settle_ended(self, trial: FrozenTrial, why: str, leftovers: Leftovers, status: ExitStatus) -> bool:
        """A trial that has ended, settled from its exit status as its agent would have settled it
        (its processes left behind stopped first); True, settled (here or by another agent)."""
        config, run_id = self.settling.config, str(trial.user_attrs[RUN_ATTR])
        leftovers.clear()  # before its log is read or attached: scrubbed of hidden values
        if _overdue(trial, config.trial_timeout, status.ended):
            timeout = f"{config.trial_timeout:g} s"
            self.reclaim(trial, f"{why}; it ran past trial_timeout ({timeout})", status="KILLED")
            return True
        ending = Ending(succeeded=status.code == 0, exit_code=status.code)
        verdict = self.reader.verdict(ending, run_id, leftovers.log_path)
        outcome = verdict.outcome
        if not outcome.complete:
            reason = f"{why}; its trial had ended: {outcome.reason}"
            infeasible = outcome.kind is Kind.INFEASIBLE  # a result: not retried
            setup = outcome.kind is Kind.SETUP  # its re-run finds it again, and stops the sweep
            retry = not infeasible and (outcome.retry or setup)
            why_infeasible = outcome.infeasible_why if infeasible else None
            failed = self.reclaim(
                trial, reason, retry=retry, again=setup, infeasible=why_infeasible, status="FAILED"
            )
            if failed and not setup:  # as its own agent would have: its log's tail, then fail_fast
                self.settling.failures.after_failure(Work.of(trial), leftovers.log_path)
            return True
        self.watch.finish(compat.trial_id(trial), run_id)  # its history, before it completes
        attempt = Attempt(Work.of(trial), run_id, leftovers.log_path, verdict.ended_as, verdict.judgement)
        if settle_adopted(self.settling, attempt, outcome, why):
            self.uploads.attach(run_id, str(leftovers.log_path))
            self.settled()
        return True


def _overdue(trial: FrozenTrial, timeout: float | None, at: float) -> bool:
    """Had the trial run longer than `trial_timeout` at `at` (seconds since the epoch)?"""
    if timeout is None or trial.datetime_start is None:
        return False
    return at - trial.datetime_start.timestamp() > timeout
