"""May this agent write the sweep's experiment on an MLflow tracking server with authentication?

A server with `--app-name basic-auth` answers a user without the right credentials 401 and a
user without EDIT on an experiment 403, but only when the first run is written: long after the
Optuna study was created. The check runs with the storage probes instead, before anything is
written to the Optuna storage: reading the experiment needs valid credentials; on an existing
experiment, setting its `sweeper.tool` tag (the same value each time, nothing else changes)
needs the permission every trial run needs. An experiment that does not exist yet is created
by the sweep, which any user of the server may do. A `register:` model is checked alike.
"""

from __future__ import annotations

from ..errors import StorageError
from ..secrets import redact
from .urls import parse

TOOL_TAG = "sweeper.tool"
TOOL = "mlflow-sweeper"
CREDENTIALS = "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"


UNAUTHENTICATED, PERMISSION_DENIED = "UNAUTHENTICATED", "PERMISSION_DENIED"


def refusal_kind(exc: Exception) -> str | None:
    """UNAUTHENTICATED (401), PERMISSION_DENIED (403), or None: not a refusal of this user."""
    code = str(getattr(exc, "error_code", "") or "")
    first_line = str(exc).split("\n", 1)[0]
    if code == UNAUTHENTICATED or "401" in first_line:
        return UNAUTHENTICATED
    if code == PERMISSION_DENIED or "403" in first_line:
        return PERMISSION_DENIED
    return None


def tracking_refusal(
    exc: Exception, tracking_uri: str, experiment: str, doing: str = "write to"
) -> StorageError | None:
    """The StorageError (exit 2) a tracking server's refusal of this user is, or None for any
    other error. `doing`: what it refused (`write to`, `delete runs of`) the experiment."""
    refused = refusal_kind(exc)
    where = redact(tracking_uri)
    if refused == UNAUTHENTICATED:
        return StorageError(
            f"the MLflow tracking server {where} refused the credentials of this agent; set {CREDENTIALS}"
        )
    if refused == PERMISSION_DENIED:
        permission = "MANAGE" if doing.startswith("delete") else "EDIT"
        return StorageError(
            f"the MLflow tracking server {where} does not let this user {doing} the experiment "
            f"{experiment!r}; ask its owner for {permission} permission"
            + ("" if doing.startswith("delete") else ", or sweep into another experiment")
        )
    return None


def check_write_access(tracking_uri: str, experiment: str, model_name: str | None = None) -> None:
    """Raise StorageError (exit 2) when a tracking server will not let this agent write the
    sweep's experiment, or add a version to `model_name` (its `register:` model) once the sweep
    completes; nothing to check for a store the agent opens itself."""
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
    if model_name is not None:
        _check_model_access(client, tracking_uri, model_name)


def _check_model_access(client, tracking_uri: str, model_name: str) -> None:
    """A registered model that exists takes a new version only from a user with EDIT on it, which
    setting its `sweeper.tool` tag needs too; one that does not is created by the sweep, as any
    user may."""
    from mlflow.exceptions import MlflowException

    from .retry import retry

    try:
        retry(lambda: client.get_registered_model(model_name), "registered model")
        # many agents starting together all write this one row: retried, as every write is
        retry(lambda: client.set_registered_model_tag(model_name, TOOL_TAG, TOOL), "registered model tag")
    except MlflowException as exc:
        if str(getattr(exc, "error_code", "")) == "RESOURCE_DOES_NOT_EXIST":
            return
        if refusal_kind(exc) != PERMISSION_DENIED:  # a read refused too: no READ on the model
            raise tracking_refusal(exc, tracking_uri, model_name) or exc from None
        raise StorageError(
            f"the MLflow tracking server {redact(tracking_uri)} does not let this user add versions to "
            f"the registered model {model_name!r} (register.model_name); ask its owner for EDIT "
            "permission, or name another model"
        ) from None
