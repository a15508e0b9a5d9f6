"""May this agent write the sweep's experiment on an MLflow tracking server with authentication?

A server with `--app-name basic-auth` answers a user without the right credentials 401 and a
user without EDIT on an experiment 403, but only when the first run is written: long after the
Optuna study was created. The check runs with the storage probes instead, before anything is
written to the Optuna storage: reading the experiment needs valid credentials; on an existing
experiment, setting its `sweeper.tool` tag (the same value each time, nothing else changes)
needs the permission every trial run needs. An experiment that does not exist yet is created
by the sweep, which any user of the server may do.
"""

from __future__ import annotations

from ..errors import StorageError
from ..secrets import redact
from .urls import parse

TOOL_TAG = "sweeper.tool"
TOOL = "mlflow-sweeper"
CREDENTIALS = "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"


def tracking_refusal(
    exc: Exception, tracking_uri: str, experiment: str, doing: str = "write to"
) -> StorageError | None:
    """The StorageError (exit 2) a tracking server's refusal of this user is, or None for any
    other error. `doing`: what it refused (`write to`, `delete runs of`) the experiment."""
    code = str(getattr(exc, "error_code", "") or "")
    text = str(exc)
    where = redact(tracking_uri)
    if code == "UNAUTHENTICATED" or "401" in text.split("\n", 1)[0]:
        return StorageError(
            f"the MLflow tracking server {where} refused the credentials of this agent; set {CREDENTIALS}"
        )
    if code == "PERMISSION_DENIED" or "403" in text.split("\n", 1)[0]:
        permission = "MANAGE" if doing.startswith("delete") else "EDIT"
        return StorageError(
            f"the MLflow tracking server {where} does not let this user {doing} the experiment "
            f"{experiment!r}; ask its owner for {permission} permission"
            + ("" if doing.startswith("delete") else ", or sweep into another experiment")
        )
    return None


def check_write_access(tracking_uri: str, experiment: str) -> None:
    """Raise StorageError (exit 2) when a tracking server will not let this agent write the
    sweep's experiment; nothing to check for a store the agent opens itself."""
    if parse(tracking_uri).scheme not in ("http", "https"):
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            client.set_experiment_tag(found.experiment_id, TOOL_TAG, TOOL)
    except MlflowException as exc:
        refused = tracking_refusal(exc, tracking_uri, experiment)
        if refused is not None:
            raise refused from None
        raise
