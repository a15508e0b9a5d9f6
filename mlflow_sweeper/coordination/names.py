"""The names the protocol writes into the Optuna storage: attributes and companion studies.

They are the on-disk contract between agents (and between versions of this package), so each is
written once, here.
"""

from __future__ import annotations

from optuna.trial import TrialState

# Study user attributes.
PARENT_ATTR = "mlflow_parent_run_id"
CONFIG_ATTR = "sweeper_config"
# Study system attributes.
FINGERPRINT_ATTR = "sweeper:fingerprint"
CLOSE_EPOCH = "sweeper:close_epoch"
TARGET_REACHED = "sweeper:target_reached"  # the number of the trial that reached `spec.target`
GENERATION = "sweeper:generation"  # how often the sweep started over under a changed config
# Trial user attributes.
RUN_ATTR = "mlflow_run_id"
REASON = "fail_reason"
# Trial system attributes.
SLOT = "sweeper:slot"
ATTEMPT = "sweeper:attempt"
AGENT = "sweeper:agent"
HEARTBEAT = "sweeper:heartbeat"
STALE_AFTER = "sweeper:stale_after"
REPLACES_RUN = "sweeper:replaces_run"

CLAIMS_SUFFIX = "#claims"
CLOSE_SUFFIX = "#close"
STARTING_OVER_SUFFIX = "#starting-over-"  # a lock study, there only while one agent starts the sweep over
ACTIVE = (TrialState.WAITING, TrialState.RUNNING)
# The WAITING trials, asked as a set: Optuna's InMemoryStorage answers the exact tuple
# (WAITING,) from a cursor that assumes no trial ever returns to WAITING, and parked claims do
# (RUNNING -> WAITING), so they would never be found again.
WAITING = frozenset({TrialState.WAITING})


def claims_study_name(identity: str) -> str:
    """The companion study whose dense trial numbers hand out budget slots."""
    return identity + CLAIMS_SUFFIX


def close_study_name(identity: str) -> str:
    """The companion study that elects the one agent closing the sweep."""
    return identity + CLOSE_SUFFIX


def starting_over_name(identity: str, generation: int) -> str:
    """The lock study of the sweep's start-over into `generation`: whoever creates it starts over."""
    return f"{identity}{STARTING_OVER_SUFFIX}{generation}"


def study_names(identity: str) -> tuple[str, ...]:
    """Every study a sweep owns: what deleting the sweep must delete."""
    return (identity, claims_study_name(identity), close_study_name(identity))
