"""The agent's own run and process: its `mlflow run` run tagged and nested, an admin command's
run ended at once, and MLflow's URL printing turned off for the agent but not for its trials."""

from __future__ import annotations

import logging
import os

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from ..config import SweepConfig
from ..storages import with_sqlite_timeout
from ..storages.retry import first_line
from ..tracking_store import user_tracking_uri
from .tags import MLFLOW_PARENT_RUN_ID, OPTUNA_STORAGE_TAG, ROLE_TAG, SWEEP_TAG, optuna_storage_id

log = logging.getLogger(__name__)

URL_PRINTING = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
_USER_URL_PRINTING: list[str | None] = []  # the user's own setting, before the agent's


def quiet_run_urls() -> None:
    """Whenever a run on a tracking server ends, MLflow reads the run once more and prints its
    URL: for an agent, a round trip and two console lines per trial. The agent turns it off for
    itself; trials keep the user's setting (`trial_environment`)."""
    if not _USER_URL_PRINTING:
        _USER_URL_PRINTING.append(os.environ.get(URL_PRINTING))
    os.environ.setdefault(URL_PRINTING, "true")


def trial_environment(env: dict[str, str]) -> dict[str, str]:
    """`env` (a copy of the agent's) as the user had it for what the agent changed for itself."""
    if _USER_URL_PRINTING:
        user = _USER_URL_PRINTING[0]
        if user is None:
            env.pop(URL_PRINTING, None)
        else:
            env[URL_PRINTING] = user
    return env


PARENT_TAG = "sweeper.parent_run_id"
COMMAND_TAG = "sweeper.command"


def current_run_id() -> str | None:
    """The run `mlflow run` started this process under (None when run directly)."""
    return os.environ.get("MLFLOW_RUN_ID") or None


def tag_agent_run(
    config: SweepConfig, parent_id: str, experiment_id: str, sweep_tracking_uri: str
) -> str | None:
    """Under `mlflow run -e sweep`, tag the agent's own run and nest it under the parent.

    MLflow nests runs of one experiment only: an agent run elsewhere (`mlflow run` without
    `--experiment-name`, or another store) is tagged with the sweep and its parent's id, and the
    returned hint says what to pass. None when nothing needs saying."""
    run_id = current_run_id()
    if not run_id:
        return None
    uri = user_tracking_uri() or sweep_tracking_uri
    try:
        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(run_id)
        tags = [RunTag(SWEEP_TAG, config.identity), RunTag(ROLE_TAG, "agent"), RunTag(PARENT_TAG, parent_id)]
        same_store = with_sqlite_timeout(uri) == sweep_tracking_uri
        nested = same_store and run.info.experiment_id == experiment_id and run_id != parent_id
        if nested:
            tags.append(RunTag(MLFLOW_PARENT_RUN_ID, parent_id))
        client.log_batch(run_id, tags=tags)
    except Exception as exc:  # noqa: BLE001 - the agent's run is a courtesy
        log.warning("could not tag the agent run %s in %s: %s", run_id, uri, first_line(exc))
        return None
    if nested:
        return None
    if not same_store:
        return f"agent run {run_id} is in another MLflow store than the sweep; it is tagged, not nested"
    return (
        f"agent run {run_id} is not in the sweep's experiment, so it cannot be nested under the parent; "
        f"pass --experiment-name {config.experiment!r} to `mlflow run` to nest it"
    )


def end_admin_run(configs: list[SweepConfig], command: str) -> None:
    """Under `mlflow run -e delete` or `-e status`: the run MLflow started for the command is tagged
    (`sweeper.role=admin`, the sweeps, their Optuna storages, the command) and ended FINISHED at
    once, so it is recognisable, never left RUNNING, and deleted only with its own sweep."""
    run_id = current_run_id()
    if not run_id:
        return
    try:
        client = MlflowClient(tracking_uri=user_tracking_uri())
        storages = sorted({optuna_storage_id(config.optuna_storage) for config in configs})
        tags = [
            RunTag(SWEEP_TAG, ",".join(config.identity for config in configs)),
            RunTag(OPTUNA_STORAGE_TAG, ",".join(storages)),
            RunTag(ROLE_TAG, "admin"),
            RunTag(COMMAND_TAG, command),
        ]
        client.log_batch(run_id, tags=tags)
        client.set_terminated(run_id, "FINISHED")
    except Exception as exc:  # noqa: BLE001 - the command's run is a courtesy
        log.debug("could not tag the %s run %s: %s", command, run_id, exc)


def end_orphaned_agent_run() -> None:
    """The agent's run KILLED, when the `mlflow run` that started it (and would have ended it) is
    gone: else it would stay RUNNING for good."""
    run_id = current_run_id()
    if not run_id:
        return
    try:
        MlflowClient(tracking_uri=user_tracking_uri()).set_terminated(run_id, "KILLED")
    except Exception as exc:  # noqa: BLE001 - the agent's run is a courtesy
        log.warning("could not end the agent run %s: %s", run_id, first_line(exc))
