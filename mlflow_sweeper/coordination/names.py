"""The names the protocol writes into the Optuna storage: attributes and companion studies.

They are the on-disk contract between agents (and between versions of this package), so each is
written once, here.
"""

from __future__ import annotations

from optuna.trial import TrialState

# Study user attributes.
PARENT_ATTR = "mlflow_parent_run_id"
CONFIG_ATTR = "sweeper_config"
COMPANION_OF_ATTR = "sweeper.companion_of"  # on a companion study: the sweep it belongs to
PURPOSE_ATTR = "sweeper.purpose"  # on a companion study: what it is, for whoever sees it listed
# Study system attributes.
FINGERPRINT_ATTR = "sweeper:fingerprint"
CREATOR = "sweeper:creator"  # the agent that created the study, until it records the parent run
TAKEOVER_SINCE = "sweeper:since"  # on a takeover round: when its elected agent was elected
CLOSE_EPOCH = "sweeper:close_epoch"
TARGET_REACHED = "sweeper:target_reached"  # [number, value] of the trial that reached `spec.target`
FAIL_FAST_FIRED = "sweeper:fail_fast"  # [why, a token]: `fail_fast` fired; every agent stops starting trials
GENERATION = "sweeper:generation"  # how often the sweep started over under a changed config
PARKED_PAST = "sweeper:parked_past:"  # + a budget: on the claims study, claims were parked past it
QUEUED = "sweeper:queued"  # on the claims study, written before the main study's first WAITING trial
# Trial user attributes.
RUN_ATTR = "mlflow_run_id"
REASON = "fail_reason"
INFEASIBLE = "infeasible"  # why the point cannot run: a result, not a failure for the exit code
# Trial system attributes.
SLOT = "sweeper:slot"
WARM_ATTR = "warm_start"  # trial user attr: where an earlier result entered by warm start came from
WARM_EXPERIMENT = "warm_start_experiment"  # trial user attr: the experiment id of such a result's run
WARM_SOURCES = "sweeper:warm_start"  # study system attr: the warm_start the sweep was created with (JSON)
WARM_SLOTS = "sweeper:warm_slots"  # study system attr: {slot: trial number} a warm start holds
ATTEMPT = "sweeper:attempt"
FIRST_ATTEMPT = "sweeper:first_attempt"  # the attempt that opened a point's fresh set of attempts
AGENT = "sweeper:agent"
HEARTBEAT = "sweeper:heartbeat"
# Set on its running trials by an agent quitting at once (a second Ctrl-C): reclaimed at once as
# interrupted, their points re-queued without counting an attempt.
QUIT = "sweeper:quit"
# Set on a trial failed because its agent was lost (silent past stale_after, or dead with how its
# trial ended unknown): its point runs again as the same attempt, up to `policy.LOST_RERUNS` times.
AGENT_LOST = "sweeper:agent_lost"
LOST = "sweeper:lost"  # how many times a point's agent was lost so far (carried by its re-runs)
STALE_AFTER = "sweeper:stale_after"
LOG_DIR = "sweeper:log_dir"  # where the trial's log (and exit status) is, on its agent's host
REPLACES_RUN = "sweeper:replaces_run"
NO_RETRY = "sweeper:no_retry"  # failed on purpose without a retry (infeasible, a missing metric)

CLAIMS_SUFFIX = "#claims"
CLOSE_SUFFIX = "#close"
# `#parent-takeover-<round>`: made only when the creator died before recording the parent run
TAKEOVER_SUFFIX = "#parent-takeover-"
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


def takeover_study_name(identity: str, round_: int) -> str:
    """The companion study whose creator, of the agents awaiting a parent run that the sweep's
    creator never recorded, creates it: exactly one parent run, whoever waits. Should that agent
    be gone too, the next round elects another."""
    return f"{identity}{TAKEOVER_SUFFIX}{round_}"


def study_names(identity: str) -> tuple[str, ...]:
    """The studies every sweep owns; a sweep's lock and election studies (`STARTING_OVER_SUFFIX`,
    `TAKEOVER_SUFFIX`) are found by their prefix. Deleting the sweep deletes all of them."""
    return (identity, claims_study_name(identity), close_study_name(identity))


COMPANION_PURPOSES = {
    CLAIMS_SUFFIX: "budget ledger of sweep '{identity}': hands out its trial slots exactly once",
    CLOSE_SUFFIX: "close election of sweep '{identity}': picks the one agent that closes it",
    TAKEOVER_SUFFIX: "parent election of sweep '{identity}': picks the one agent that creates its "
    "parent run, its creator having died first",
}


def companion_purpose(identity: str, name: str) -> str:
    """The sentence a companion study carries, seen in optuna-dashboard beside its delete button."""
    what = next(text for suffix, text in COMPANION_PURPOSES.items() if suffix in name)
    return (
        f"{what.format(identity=identity)}. Do not delete it while the sweep exists: "
        "`mlflow-sweeper delete` removes it together with the sweep."
    )
