"""`register:`: the best trial's model becomes a new version in the MLflow Model Registry.

Run once by the agent that closes the sweep. A closer that crashed may be followed by another:
a version already tagged with this sweep and trial is reused, never registered twice."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException

from .. import compat
from ..record.lookup import quote
from ..record.tags import SWEEP_TAG, TRIAL_TAG
from ..storages import retry

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from optuna.trial import FrozenTrial

    from ..config import SweepConfig
    from ..config.register import Registration

log = logging.getLogger(__name__)

REGISTERED_TAG = "sweeper.registered_model"  # on the parent: "name/version"
REGISTER_WARNING_TAG = "sweeper.register_warning"  # on the parent: why nothing was registered


class AmbiguousModel(Exception):
    """Several logged models and none named as configured: which to register is not guessed."""


@dataclass(frozen=True)
class Outcome:
    version: str | None = None  # "name/version" when registered (now or by an earlier close)
    warning: str | None = None  # why nothing was registered


def register_best(
    client: MlflowClient, config: SweepConfig, experiment_id: str, parent_id: str, best: FrozenTrial | None
) -> Outcome:
    """Register the best trial's model (once), move the alias to it, tag the parent. Never
    raises: a registry that refuses is a warning, and the sweep still completes."""
    spec: Registration = config.register
    run_id = best.user_attrs.get("mlflow_run_id") if best is not None else None
    if run_id is None:
        return _warn(client, parent_id, "no best trial with a run: nothing to register")
    try:
        return _register(client, config, spec, experiment_id, parent_id, best, run_id)
    except Exception as exc:  # noqa: BLE001 - the registry's answer, whatever it is, as a warning
        message = getattr(exc, "message", None) or str(exc)
        return _warn(
            client, parent_id, f"could not register the best trial's model in '{spec.model_name}': {message}"
        )


def _drop_tag(client: MlflowClient, parent_id: str, key: str) -> None:
    """A tag an earlier close wrote that no longer holds (the best trial has changed since)."""
    with contextlib.suppress(MlflowException):  # never written
        client.delete_tag(parent_id, key)


def _register(
    client: MlflowClient, config: SweepConfig, spec: Registration, experiment_id: str, parent_id: str,
    best: FrozenTrial, run_id: str,
) -> Outcome:  # fmt: skip
    version = _existing(client, spec.model_name, config.identity, best.number)
    if version is None:
        source = _model_source(client, experiment_id, run_id, spec.artifact_path)
        if source is None:
            return _warn(
                client, parent_id,
                f"the best trial ({best.number}, run {run_id}) logged no model (no MLflow logged model "
                f"and no artifact at '{spec.artifact_path}'): nothing registered in '{spec.model_name}'",
            )  # fmt: skip
        version = _create(client, spec.model_name, source, run_id, config, best)
    if spec.alias:
        retry(lambda: client.set_registered_model_alias(spec.model_name, spec.alias, version), "alias")
    registered = f"{spec.model_name}/{version}"
    retry(lambda: client.set_tag(parent_id, REGISTERED_TAG, registered), "registered tag")
    _drop_tag(client, parent_id, REGISTER_WARNING_TAG)
    return Outcome(version=registered)


def _warn(client: MlflowClient, parent_id: str, message: str) -> Outcome:
    log.warning("warning: register: %s", message)  # as the description says it: **Warning:**
    try:
        client.set_tag(parent_id, REGISTER_WARNING_TAG, message)
    except MlflowException as exc:
        log.debug("could not tag the parent with the warning: %s", exc)
    _drop_tag(client, parent_id, REGISTERED_TAG)
    return Outcome(warning=message)


def _existing(client: MlflowClient, name: str, sweep: str, trial: int) -> str | None:
    """The version an earlier close registered for this sweep's trial, if any."""
    try:
        versions = retry(lambda: client.search_model_versions(f"name = '{quote(name)}'"), "model versions")
    except MlflowException:
        return None
    for version in versions:
        if version.tags.get(SWEEP_TAG) == sweep and version.tags.get(TRIAL_TAG) == str(trial):
            return str(version.version)
    return None


def _model_source(client: MlflowClient, experiment_id: str, run_id: str, artifact_path: str) -> tuple | None:
    """(source, model_id) of the run's model: its MLflow logged model (the one named
    `artifact_path` when there are several), else its artifacts at `artifact_path`."""
    try:
        models = list(
            client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'")
        )
    except MlflowException as exc:  # a store without logged models
        log.debug("could not search logged models: %s", exc)
        models = []
    if models:
        named = [m for m in models if m.name == artifact_path]
        if not named and len(models) > 1:
            names = ", ".join(sorted(m.name for m in models))
            raise AmbiguousModel(
                f"the best trial's run logged several models ({names}) and none is named "
                f"'{artifact_path}': set register.artifact_path to the one to register"
            )
        model = (named or models)[-1]
        # Its artifact location, not `models:/<id>`: a SQL registry store resolves that through
        # the process's global tracking URI, which need not be this sweep's store.
        return model.artifact_location, model.model_id
    if retry(lambda: client.list_artifacts(run_id, artifact_path), "model artifacts"):
        artifact_uri = retry(lambda: client.get_run(run_id), "run").info.artifact_uri
        return f"{artifact_uri.rstrip('/')}/{artifact_path}", None
    return None


def _create(client: MlflowClient, name: str, source: tuple, run_id: str, config: SweepConfig, best) -> str:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "ALREADY_EXISTS" not in str(exc.error_code):
            raise
    uri, model_id = source
    tags = {
        SWEEP_TAG: config.identity,
        TRIAL_TAG: str(best.number),
        config.objective.metric: repr(float(best.value)).removesuffix(".0"),  # the value exactly
    }
    version = client.create_model_version(name, uri, run_id=run_id, tags=tags, model_id=model_id)
    if model_id is not None:
        _show_on_logged_model(client, model_id, name, version.version)
    return str(version.version)


def _show_on_logged_model(client: MlflowClient, model_id: str, name: str, version) -> None:
    """List the version on the logged model's page, as MLflow's own `register_model` does: the
    model's `mlflow.modelVersions` tag (a JSON list) names it. The version stands without it."""
    key = getattr(compat.mlflow_tags(), "MLFLOW_MODEL_VERSIONS", "mlflow.modelVersions")
    entry = {"name": name, "version": version}
    try:
        listed = json.loads(client.get_logged_model(model_id).tags.get(key) or "[]")
        if entry not in listed:
            retry(
                lambda: client.set_logged_model_tags(model_id, {key: json.dumps([*listed, entry])}),
                "model tag",
            )
    except (MlflowException, ValueError) as exc:
        log.warning(
            "register: version %s of %s is not shown on logged model %s: %s", version, name, model_id, exc
        )
