"""Finding a sweep's experiment and runs in MLflow: every page of a search, filters quoted."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..storages import retry
from .tags import SWEEP_TAG

log = logging.getLogger(__name__)


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, created (or restored from the bin) if need be; two agents creating it
    at once both succeed."""

    def get_or_create() -> str:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
                log.warning(
                    "experiment %r was deleted in MLflow; restored, so that the sweep records in it "
                    "(rename it, or the config's experiment, to keep it deleted)",
                    name,
                )
            return experiment.experiment_id
        try:
            return client.create_experiment(name)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" in str(exc.error_code) or "already exists" in str(exc):
                experiment = client.get_experiment_by_name(name)
                if experiment is not None:
                    return experiment.experiment_id
            raise

    return retry(get_or_create, "experiment", also=lambda e: "already exists" in str(e).lower())


def find_experiment(client: MlflowClient, name: str) -> str | None:
    """The experiment's id, or None: never creates it."""
    experiment = retry(lambda: client.get_experiment_by_name(name), "experiment")
    return None if experiment is None else experiment.experiment_id


def runs_of_sweep(
    client: MlflowClient,
    experiment_ids: list[str],
    identity: str,
    *,
    tag: tuple[str, str] | None = None,
    view: int = ViewType.ACTIVE_ONLY,
) -> list:
    """The runs of sweep `identity` in these experiments, those whose tag `tag[0]` is `tag[1]`
    only when given."""
    filter_string = f"tags.`{SWEEP_TAG}` = '{quote(identity)}'"
    if tag is not None:
        filter_string += f" and tags.`{tag[0]}` = '{quote(tag[1])}'"
    runs = []
    for start in range(0, len(experiment_ids), 100):  # MLflow searches at most 100 at once
        ids = experiment_ids[start : start + 100]
        runs.extend(
            all_pages(
                lambda t, ids=ids: client.search_runs(
                    ids, filter_string, run_view_type=view, max_results=1000, page_token=t
                )
            )
        )
    return runs


def every_experiment(client: MlflowClient) -> list[str]:
    """The ids of every experiment, deleted ones too."""
    found = all_pages(
        lambda t: client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=t)
    )
    return [experiment.experiment_id for experiment in found]


def all_pages(fetch: Callable) -> list:
    items, token = [], None
    while True:
        page = retry(lambda t=token: fetch(t), "search")
        items.extend(page)
        token = page.token
        if not token:
            return items


def quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
