"""Keeping a sweep whole while agents come and go: heartbeats for this agent's trials, the
reclaim of trials and claims left behind by agents that went silent or died, and the re-queue of
points whose reclaiming agent died before re-queueing them."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from ..launch.process import stop_orphaned_trial

if TYPE_CHECKING:
    from .session import SweepSession

log = logging.getLogger(__name__)

LOST_REQUEUE_GRACE = 60.0
PROGRESS_SYNC_SECONDS = 5.0  # how often the shown counts are read from the storage (every agent's)


def maintenance_interval(stale_after: float) -> float:
    """Beat four times per `stale_after`, within 0.2 s and 30 s."""
    return max(0.2, min(30.0, stale_after / 4))


def maintain(session: SweepSession) -> None:
    """Beat, reclaim and sync the progress, sleep, until the session is done. The first check
    runs at once, so a restarted agent takes over its dead predecessor's trials right away."""
    interval = maintenance_interval(session.config.stale_after)
    next_beat = 0.0
    while True:
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + interval
            own = session.running_trial_ids()
            if own:
                session.study.heartbeat(own)
            try:
                reclaim(session, own)
            except Exception as exc:  # noqa: BLE001 - try again at the next beat
                log.warning("could not check for stale trials: %s", exc)
        session.refresh_progress()
        if session.done.wait(min(interval, PROGRESS_SYNC_SECONDS)):
            return


def reclaim(session: SweepSession, own: set[int]) -> None:
    for trial, why, requeued in session.study.reclaim_stale(own):
        run_id = trial.user_attrs.get("mlflow_run_id")
        stopped = stop_orphaned_trial(run_id)  # no point runs twice at once on this host
        session.recorder.kill_run(run_id, "FAILED")
        then = "re-queued" if requeued else "failed for good"
        left = "; stopped its processes left on this host" if stopped else ""
        session.report(f"trial {trial.number} reclaimed: {why}; {then}{left}")
    for slot in session.study.release_stale_claims():
        session.report(f"slot {slot} released: its agent died while claiming it")


def requeue_lost(session: SweepSession) -> bool:
    """Look for points owed a re-run once nothing is active; True to go on working.

    A stale trial is failed first and re-queued right after by the agent that reclaimed it (a
    stale claim voided, and its slot queued). If that agent died in between, the point is
    queued here once the failure is older than LOST_REQUEUE_GRACE; until then this agent waits
    for the re-queue to appear.
    """
    if not session.study.is_finished():
        return False
    trials = session.study.trials()
    lost = session.study.unresolved_slots(trials)
    orphaned = session.study.orphaned_slots(trials)
    if not lost and not orphaned:
        return False
    now = dt.datetime.now()

    def overdue(ended: dt.datetime | None) -> bool:
        return (now - (ended or now)).total_seconds() > LOST_REQUEUE_GRACE

    for trial in lost:
        if overdue(trial.datetime_complete):
            session.study.requeue_trial(trial)
    for slot, voided in orphaned.items():
        if overdue(voided):
            session.study.queue_slot(slot)
    return not session.agent.stop.wait(1.0)
