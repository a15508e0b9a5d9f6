"""A database tracking store with a local artifact location: agents on other hosts cannot reach
the artifacts. Said once, when an agent opens the sweep.

MLflow gives an experiment created against `postgresql://...` (with no server and no artifact
root) the artifact location `./mlruns` of whichever process created it: each host then writes
trial logs and reports to its own disk, and the UI shows them for none of the others.
"""

from __future__ import annotations

from urllib.parse import urlparse

DATABASE_SCHEMES = ("postgresql", "mysql", "mssql", "oracle")  # with or without `+driver`


def _scheme(uri: str) -> str:
    return urlparse(uri).scheme.split("+", 1)[0].lower()


def is_local_location(location: str) -> bool:
    """A plain path or a `file:` URI: on the disk of the host that wrote it."""
    scheme = _scheme(location)
    return scheme == "" or scheme == "file" or (len(scheme) == 1 and location[1:2] == ":")  # C:\...


def shared_artifact_warning(tracking_uri: str, artifact_location: str | None) -> str | None:
    """The warning for a database tracking store whose experiment keeps artifacts on a local
    path, or None. (SQLite is left alone: a file on one host, like its artifacts.)"""
    if not artifact_location or _scheme(tracking_uri) not in DATABASE_SCHEMES:
        return None
    if not is_local_location(artifact_location):
        return None
    return (
        f"warning: the experiment's artifacts go to the local path {artifact_location}, while its "
        "runs are in a database: agents on other hosts cannot read or write those artifacts (trial "
        "logs, the report). For a shared location, create the experiment with one before the sweep "
        "(`mlflow experiments create -n NAME --artifact-location s3://bucket/path`, or "
        "mlflow.create_experiment(name, artifact_location=...)), or run `mlflow server "
        "--backend-store-uri DB --artifacts-destination s3://bucket/path` and give its http:// URL "
        "as mlflow_storage"
    )


def warn_if_artifacts_local(reporter, client, experiment_id: str) -> None:
    """Once per opening of a sweep: the warning above, on the agent's console, if it applies."""
    try:
        location = client.get_experiment(experiment_id).artifact_location
    except Exception:  # noqa: BLE001 - a hint only: the sweep goes on without it
        return
    warning = shared_artifact_warning(client.tracking_uri, location)
    if warning:
        reporter.event(warning)
