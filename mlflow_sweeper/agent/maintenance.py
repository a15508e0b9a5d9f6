"""Keeping a sweep whole while agents come and go: heartbeats for this agent's trials, the
reclaim of trials and claims left behind by agents that went silent or died (`orphans.py`: what
their trials left), and the re-queue of points whose reclaiming agent died before re-queueing
them."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from ..coordination import SweepStudy
from ..progress import Reporter
from .orphans import Orphans
from .stop import StopSignal

log = logging.getLogger(__name__)

LOST_REQUEUE_GRACE = 60.0
PROGRESS_SYNC_SECONDS = 5.0  # how often the shown counts are read from the storage (every agent's)
FIRST_CHECK_WAIT = 30.0  # the most the workers wait for the first look for dead agents' trials


def maintenance_interval(stale_after: float) -> float:
    """Beat four times per `stale_after`, within 0.2 s and 30 s."""
    return max(0.2, min(30.0, stale_after / 4))


class Maintenance:
    """The maintenance thread's work for one agent on one sweep."""

    def __init__(
        self,
        study: SweepStudy,
        console: Reporter,
        stale_after: float,
        running_ids: Callable[[], set[int]],
        refresh_progress: Callable[[], None],
        orphans: Orphans,
    ):
        self.study = study
        self.console = console
        self.interval = maintenance_interval(stale_after)
        self.running_ids = running_ids  # this agent's running trials (Optuna trial ids)
        self.refresh_progress = refresh_progress
        self.orphans = orphans  # what dead agents' trials left: results, processes, re-runs
        self.first_check = threading.Event()  # set once the first look for dead agents' trials is over

    def run(self, done: threading.Event) -> None:
        """Beat, reclaim and sync the progress, sleep, until `done`. The first check runs at once,
        so a restarted agent takes over its dead predecessor's trials right away (its workers wait
        for it: a dead agent's trial still running here takes one of their places)."""
        next_beat = 0.0
        while True:
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.interval
                own = self.running_ids() | self.orphans.watched_ids()
                if own:
                    self.study.heartbeat(own)
                try:
                    self.reclaim(own)
                except Exception as exc:  # noqa: BLE001 - try again at the next beat
                    log.warning("could not check for stale trials: %s", exc)
                finally:
                    self.first_check.set()
            if self.orphans.watched:  # each wake: a watched trial's end or timeout is met in seconds
                try:
                    self.orphans.check_watched()
                except Exception as exc:  # noqa: BLE001 - checked again at the next wake
                    log.warning("could not check the trials this agent watches: %s", exc)
            self.refresh_progress()
            if done.wait(min(self.interval, PROGRESS_SYNC_SECONDS)):
                return

    def reclaim(self, own: set[int]) -> None:
        for trial, why, requeued in self.study.reclaim_stale(own, self.orphans.adopt):
            self.orphans.reclaimed(trial, why, requeued)
        for slot in self.study.release_stale_claims():
            self.console.event(f"slot {slot} released: its agent died while claiming it")


def requeue_lost(study: SweepStudy, stop: StopSignal) -> bool:
    """Look for points owed a re-run once nothing is active; True to go on working.

    A stale trial is failed first and re-queued right after by the agent that reclaimed it (a
    stale claim voided, and its slot queued). If that agent died in between, the point is
    queued here once the failure is older than LOST_REQUEUE_GRACE; until then this agent waits
    for the re-queue to appear.
    """
    if not study.is_finished():
        return False
    trials = study.trials()
    lost = study.unresolved_slots(trials)
    orphaned = study.orphaned_slots(trials)
    if not lost and not orphaned:
        return False
    now = dt.datetime.now()

    def overdue(ended: dt.datetime | None) -> bool:
        return (now - (ended or now)).total_seconds() > LOST_REQUEUE_GRACE

    for trial in lost:
        if overdue(trial.datetime_complete):
            study.requeue_if_allowed(trial)
    for slot, voided in orphaned.items():
        if overdue(voided):
            study.queue_slot(slot)
    return not stop.wait(1.0)
