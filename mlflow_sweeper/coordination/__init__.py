"""Coordination: how agents share one sweep through the Optuna storage alone.

Every step uses only operations each Optuna storage makes atomic (RDB row locks and
transactions, the journal's ordered log): dense unique trial numbers per study, and the
WAITING -> RUNNING and RUNNING -> FAIL updates that one agent wins and the others lose.

* `ledger`: budget slots, claimed through a companion study's trial numbers.
* `lifecycle`: trials taken, completed, failed and re-queued (`policy` says how often a point
  may run); `creation`: trials created, their points fixed or sampled.
* `liveness`: heartbeats, and failing the trials of silent or dead agents.
* `closing`: the election of the one agent that closes the sweep.
* `identity`: the study, its drift check and the one parent run.
* `tallies`: pure functions over a list of trials.
* `store`: the retrying storage wrapper and the atomic steps; `names`: what is written where.
* `facade`: `SweepStudy`, the one object the agent and the CLI use.
"""

from .creation import Work
from .facade import SweepStudy
from .ledger import CLAIM_STALE_SECONDS
from .lifecycle import WAITING_CHECK_SECONDS
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
