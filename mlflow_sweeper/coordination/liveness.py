"""Liveness: heartbeats for the trials an agent runs, and failing those of silent or dead agents.

Shaped like Optuna's heartbeat: the owner of a RUNNING trial records a beat every so often, and
`fail_stale_trials` fails, through the atomic RUNNING -> FAIL update, every trial whose owner
went silent; of many agents doing so at once, exactly one fails each trial.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from .. import compat
from .names import AGENT, HEARTBEAT, LOG_DIR, QUIT, STALE_AFTER
from .store import RetryingStorage, finish, set_reason
from .tallies import INTERRUPTED_PREFIX

log = logging.getLogger(__name__)


def agent_id() -> str:
    """host:pid:random, so that an agent on the same host can tell a dead owner at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def beat_interval(stale_after: float) -> float:
    """How often an owner beats: a few beats per stale_after, so one missed beat is harmless."""
    return max(0.2, min(30.0, stale_after / 4))


class Heartbeat:
    """One agent's heartbeats, and its judgement of other agents' silence."""

    def __init__(
        self,
        store: RetryingStorage,
        agent: str,
        stale_after: float,
        log_dir: Callable[[], str | None] = lambda: None,
    ):
        self.store = store.with_attempts(3)
        self.agent = agent
        self.stale_after = stale_after
        # this agent's (its `output_dir` may differ from another's on the host); asked for only
        # when a trial is claimed, since finding it creates the folder (`status` creates nothing)
        self._log_dir = log_dir
        self.host = agent.split(":")[0]
        self.pid = os.getpid()

    def owner_attrs(self) -> dict:
        """Who runs a trial, when it last beat, how long its owner may stay silent, and where its
        log is (an agent taking over on the same host reads the trial's exit status there)."""
        attrs = {AGENT: self.agent, HEARTBEAT: time.time(), STALE_AFTER: self.stale_after}
        log_dir = self._log_dir()
        return attrs if log_dir is None else {**attrs, LOG_DIR: log_dir}

    def record(self, trial_ids: Iterable[int]) -> None:
        """Beat for these trials; a missed beat is logged, not fatal."""
        now = time.time()
        for trial_id in trial_ids:
            try:
                self.store.set_trial_system_attr(trial_id, HEARTBEAT, now)
            except UpdateFinishedTrialError:
                pass
            except Exception as exc:  # noqa: BLE001 - a missed beat is not fatal
                log.warning("heartbeat failed: %s", exc)

    def keep_alive(self, trial_id: int) -> threading.Event:
        """Beat for one trial from a background thread until the returned event is set or the
        trial has ended or is gone (its study deleted)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(beat_interval(self.stale_after)):
                try:
                    self.store.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
                except (UpdateFinishedTrialError, KeyError):
                    return
                except Exception as exc:  # noqa: BLE001 - a missed beat is not fatal
                    log.warning("heartbeat failed: %s", exc)

        threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial_id}").start()
        return stop

    def why_stale(self, trial: FrozenTrial, now: float) -> str | None:
        """Why a RUNNING trial's owner counts as gone, or None while it is alive."""
        owner = str(trial.system_attrs.get(AGENT, ""))
        if trial.system_attrs.get(QUIT):
            return f"{INTERRUPTED_PREFIX} (Ctrl-C twice): its agent {owner} quit at once"
        beat = trial.system_attrs.get(HEARTBEAT)
        if beat is None and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()
        # The owner beats at a pace set by its own stale_after, which may be longer than ours.
        patience = max(self.stale_after, float(trial.system_attrs.get(STALE_AFTER, 0)))
        if self.owner_dead_on_this_host(owner):
            return f"its agent {owner} died"
        if beat is None or now - float(beat) < patience:
            return None
        return f"its agent {owner or '?'} was silent for {now - float(beat):.0f} s (stale_after)"

    def owner_dead_on_this_host(self, owner: str) -> bool:
        parts = owner.split(":")
        if len(parts) != 3 or parts[0] != self.host:
            return False
        try:
            pid = int(parts[1])
        except ValueError:
            return False
        return pid != self.pid and not pid_alive(pid)


def adopt_nothing(trial: FrozenTrial, why: str) -> bool:
    """Every stale trial is failed (and its point run again): what is left is not looked at."""
    return False


def fail_stale_trials(
    store: RetryingStorage,
    study_id: int,
    heartbeat: Heartbeat,
    skip: set[int],
    on_failed: Callable[[FrozenTrial, str], None] = lambda trial, why: None,
    adopt: Callable[[FrozenTrial, str], bool] = adopt_nothing,
    mark: Callable[[FrozenTrial], None] = lambda trial: None,
) -> list[tuple[FrozenTrial, str]]:
    """Fail the RUNNING trials (other than `skip`) whose owner is gone; returns them and why.

    `adopt` sees each first, and a trial it takes (its run had finished: its result is kept) is
    not failed. `mark` records why on each of the others just before its failure. `on_failed`
    runs right after each win of the RUNNING -> FAIL update, before the next trial, so that a
    re-queue follows its failure at once.
    """
    now = time.time()
    running = store.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    failed = []
    for trial in running:
        if compat.trial_id(trial) in skip:
            continue
        why = heartbeat.why_stale(trial, now)
        if why is None or adopt(trial, why):
            continue
        try:
            mark(trial)
        except UpdateFinishedTrialError:
            continue  # finished by its agent, or failed by another one
        if not fail_stale(store, trial, why):
            continue  # finished by its agent, or failed by another one
        on_failed(trial, why)
        failed.append((trial, why))
    return failed


def fail_stale(store: RetryingStorage, trial: FrozenTrial, why: str) -> bool:
    """Fail a trial whose owner is gone, saying why; True when this call won RUNNING -> FAIL."""
    set_reason(store, compat.trial_id(trial), why)
    return finish(store, compat.trial_id(trial), TrialState.FAIL)
