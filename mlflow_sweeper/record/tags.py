"""The tags that mark a sweep's runs in MLflow: what the UI, `status` and `delete` search by."""

SWEEP_TAG = "sweeper.sweep"
ROLE_TAG = "sweeper.role"
TRIAL_TAG = "sweeper.trial"
BEST_RUN_TAG = "sweeper.best_run_id"
REPLACED_BY_TAG = "sweeper.replaced_by"
ATTEMPT_TAG = "sweeper.attempt"
PARETO_TAG = "sweeper.pareto"  # "true" on trial runs on the Pareto front (several objectives)
PARETO_RUNS_TAG = "sweeper.pareto_run_ids"  # on the parent: the front's run ids, comma-separated
STOPPED_TAG = "sweeper.stopped"  # on the parent: why the sweep stopped early ("target")
STARTED_OVER_TAG = "sweeper.started_over"  # on the parent: how often the sweep started over
# On the parent: a digest of the config its `sweep/` artifact holds (as shown: redacted). An agent
# started with another config (a fixed command, say) stores that one: the artifact is the latest.
CONFIG_DIGEST_TAG = "sweeper.config_digest"
# On the parent: which Optuna storage the sweep is in (a digest). Two sweeps of one name in one
# MLflow store but with separate Optuna storages are two sweeps: `delete` tells them apart.
OPTUNA_STORAGE_TAG = "sweeper.optuna_storage_id"
# MLflow's documented system tags (`mlflow.utils.mlflow_tags` is not public API).
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MAX_PARAM_LENGTH = 6000  # MLflow's longest param value


def digest(text: str) -> str:
    """A short digest of `text` as a tag value: the same in every process."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_digest(shown: str) -> str:
    """The digest of what a config says, not of how it is written: comments, layout and key order
    change nothing, nor does `warm_start` (a sweep keeps the one it was created with: left out on
    resume it is no change, and another is refused or starts the sweep over). Text that does not
    read as a mapping (a value shown as `***`) is digested as written."""
    import json

    from ..config.loading import parse_yaml
    from ..config.schema import KEPT_WHEN_LEFT_OUT

    try:
        meaning = parse_yaml(shown)
        if not isinstance(meaning, dict):
            return digest(shown)
        kept = {str(key): value for key, value in meaning.items() if key not in KEPT_WHEN_LEFT_OUT}
        return digest(json.dumps(kept, sort_keys=True, default=str))
    except Exception:  # noqa: BLE001 - unreadable, or keys json cannot order: the text itself
        return digest(shown)


def optuna_storage_id(optuna_storage: str) -> str:
    """The value of `OPTUNA_STORAGE_TAG` for a sweep's (resolved) Optuna storage URL: a digest of
    it without its password, so it differs wherever the URL does (a value from `${VAR}` too) and
    reveals nothing; every process computes the same."""
    from ..secrets import without_credentials

    return digest(without_credentials(optuna_storage))


def sweep_tags(identity: str, role: str, **extra: str) -> dict[str, str]:
    """The tags every run of the sweep `identity` carries, with its role (parent, trial)."""
    return {SWEEP_TAG: identity, ROLE_TAG: role, **extra}
