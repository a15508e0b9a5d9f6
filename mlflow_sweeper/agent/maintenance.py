"""The maintenance thread of a sweep session: heartbeats for this agent's trials, and the
reclaim of trials and claims left behind by agents that went silent or died."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import SweepSession

log = logging.getLogger(__name__)


def maintenance_interval(stale_after: float) -> float:
    """Beat four times per `stale_after`, within 0.2 s and 30 s."""
    return max(0.2, min(30.0, stale_after / 4))


def maintain(session: SweepSession) -> None:
    """Beat, reclaim, sleep, until the session is done. The first check runs at once, so a
    restarted agent takes over its dead predecessor's trials right away."""
    interval = maintenance_interval(session.config.stale_after)
    while True:
        own = session.running_trial_ids()
        if own:
            session.study.heartbeat(own)
        try:
            reclaim(session, own)
        except Exception as exc:  # noqa: BLE001 - try again at the next beat
            log.warning("could not check for stale trials: %s", exc)
        if session.done.wait(interval):
            return


def reclaim(session: SweepSession, own: set[int]) -> None:
    for trial, why, requeued in session.study.reclaim_stale(own):
        session.recorder.kill_run(trial.user_attrs.get("mlflow_run_id"), "FAILED")
        then = "re-queued" if requeued else "failed for good"
        session.report(f"trial {trial.number} reclaimed: {why}; {then}")
    for slot in session.study.release_stale_claims():
        session.report(f"slot {slot} released: its agent died while claiming it")
