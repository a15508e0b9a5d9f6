"""Links into the MLflow UI. Its pages live behind `#/...` routes, so a link relative to the
page (`#/experiments/<id>/runs/<run>`) works inside the UI itself, in a run's description, and a
full one needs the tracking server's address in front."""

from __future__ import annotations

import urllib.parse


def run_route(experiment_id: str, run_id: str) -> str:
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def runs_route(experiment_id: str) -> str:
    """The experiment's runs table ("Training runs"), where the parent shows its trials nested."""
    return f"#/experiments/{experiment_id}/runs"


def artifact_route(experiment_id: str, run_id: str, path: str) -> str:
    return f"{run_route(experiment_id, run_id)}/artifacts/{path}"


def server_address(tracking_uri: str | None) -> str | None:
    """The UI's address for an `http(s)://` tracking store; None for a store without a UI."""
    if not tracking_uri or not tracking_uri.lower().startswith(("http://", "https://")):
        return None
    parsed = urllib.parse.urlsplit(tracking_uri)
    if "@" in parsed.netloc:  # credentials in the URI: a link works without them (the browser asks)
        parsed = parsed._replace(netloc=parsed.netloc.rpartition("@")[2])
    return urllib.parse.urlunsplit(parsed).rstrip("/")


def ui_links(tracking_uri: str | None, experiment_id: str, parent_id: str) -> dict[str, str]:
    """The parent run's page and the experiment's runs page on a tracking server; empty
    without one (a local store's UI runs wherever `mlflow ui` is started)."""
    server = server_address(tracking_uri)
    if server is None or not parent_id:
        return {}
    return {
        "parent_url": f"{server}/{run_route(experiment_id, parent_id)}",
        "runs_url": f"{server}/{runs_route(experiment_id)}",
    }


def link_lines(links: dict[str, str]) -> list[str]:
    """The console's lines for `ui_links`."""
    if not links:
        return []
    return [f"parent run page: {links['parent_url']}", f"runs (trials nested): {links['runs_url']}"]
