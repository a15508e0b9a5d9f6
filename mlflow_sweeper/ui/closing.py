"""The parent's description as the sweep closes: what the other close actions left on the parent
(importances, the report, the registered model or why none) joins the trials' story."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .description import REPORT_PAGE
from .live import read_view, write_description
from .register import REGISTER_WARNING_TAG, REGISTERED_TAG

if TYPE_CHECKING:
    from ..config import SweepConfig
    from ..coordination import SweepStudy
    from ..record import Recorder

log = logging.getLogger(__name__)

IMPORTANCE_PREFIX = "importance/"


def describe_closed_sweep(config: SweepConfig, study: SweepStudy, recorder: Recorder, parent_id: str) -> None:
    """Never fails the close: a description that cannot be written is logged and left."""
    client = recorder.client
    try:
        parent = client.get_run(parent_id)
        metrics, tags = parent.data.metrics, parent.data.tags
        importances = {
            name[len(IMPORTANCE_PREFIX) :]: value
            for name, value in metrics.items()
            if name.startswith(IMPORTANCE_PREFIX) and "/" not in name[len(IMPORTANCE_PREFIX) :]
        }
        logged = {item.path for item in client.list_artifacts(parent_id, "report")}
        warning = tags.get(REGISTER_WARNING_TAG) if config.register is not None else None
        view = read_view(
            config, study, recorder.experiment_id, parent_id,
            state="complete",
            importances=importances,
            report_path=REPORT_PAGE if REPORT_PAGE in logged else None,
            registered=tags.get(REGISTERED_TAG) if config.register is not None else None,
            warnings=(warning,) if warning else (),
        )  # fmt: skip
        write_description(client, parent_id, view)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not write the sweep's description on its parent: %s: %s", type(exc).__name__, exc)
