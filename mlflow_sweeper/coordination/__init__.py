"""Coordination: how agents share one sweep through the Optuna storage alone.

Every step uses only operations each Optuna storage makes atomic (RDB row locks and
transactions, the journal's ordered log): dense unique trial numbers per study, and the
WAITING -> RUNNING and RUNNING -> FAIL updates that one agent wins and the others lose.

* `ledger`: budget slots, claimed through a companion study's trial numbers.
* `claiming`: a trial taken (a queued re-run, else a fresh slot); `creation`: trials created,
  their points fixed or sampled; `ending`: trials completed, pruned, failed and re-queued
  (`policy` says how often a point may run); `target`: `spec.target` reached.
* `liveness`: heartbeats, and who counts as gone; `reclaiming`: the trials of silent or dead
  agents failed and their points re-queued.
* `closing`: the election of the one agent that closes the sweep.
* `identity`: the study and its drift check; `parent_election`: the one parent run, and who
  creates it when the creator is gone first.
* `tallies`: pure functions over a list of trials; `view`: the sweep's trials read and tallied.
* `fail_fast`: the rule that stops a sweep whose first trials all failed (agents, `status`).
* `store`: the retrying storage wrapper and the atomic steps; `names`: what is written where.
* `facade`: `SweepStudy`, the one object the agent and the CLI use.
"""

from .claiming import WAITING_CHECK_SECONDS
from .creation import Work
from .facade import SweepStudy
from .ledger import CLAIM_STALE_SECONDS
from .liveness import agent_id
from .names import (
    AGENT,
    ATTEMPT,
    CLAIMS_SUFFIX,
    CLOSE_SUFFIX,
    FINGERPRINT_ATTR,
    HEARTBEAT,
    PARENT_ATTR,
    REASON,
    REPLACES_RUN,
    RUN_ATTR,
    SLOT,
    STALE_AFTER,
    claims_study_name,
    close_study_name,
    study_names,
)
from .policy import RetryPolicy
from .tallies import Progress

__all__ = [
    "AGENT",
    "ATTEMPT",
    "CLAIMS_SUFFIX",
    "CLAIM_STALE_SECONDS",
    "CLOSE_SUFFIX",
    "FINGERPRINT_ATTR",
    "HEARTBEAT",
    "PARENT_ATTR",
    "REASON",
    "REPLACES_RUN",
    "RUN_ATTR",
    "RetryPolicy",
    "SLOT",
    "STALE_AFTER",
    "SweepStudy",
    "WAITING_CHECK_SECONDS",
    "Progress",
    "Work",
    "agent_id",
    "claims_study_name",
    "close_study_name",
    "study_names",
]
