"""Building one agent's session on one sweep: both storages probed, the study found or created,
the parent run, the launcher and the progress, in the order that writes nothing too early."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..algorithms import PointSource
from ..coordination import SweepStudy
from ..launch import make_launcher
from ..progress import SweepProgress
from ..record import Recorder, tag_agent_run
from ..storages import exists as storage_exists
from ..storages import open_mlflow_tracking, open_optuna_storage, probe_mlflow_storage, probe_optuna_storage
from ..storages.pools import AGENT_APPLICATION, agent_pools, store_turn
from ..tracking_store import (
    agreed_tracking_uri,
    explicit_tracking_uri,
    first_records,
    record_tracking_uri,
    sweep_tracking_uri,
)
from ..warmstart.entering import enter as enter_warm_start
from ..warmstart.entering import gather as gather_warm_start

if TYPE_CHECKING:
    from ..config import SweepConfig
    from ..preflight import CheckedProject
    from .process import Agent
    from .session import SweepSession


def open_session(
    session_class: type[SweepSession], agent: Agent, config: SweepConfig, checked: CheckedProject | None
) -> SweepSession:
    """Probe both storages, find or create the study and its parent run, check for drift.

    The MLflow storage is the config's, else MLFLOW_TRACKING_URI, else the one recorded in the
    sweep's study by its first agent, else MLflow's default (then recorded for the others)."""
    # Both storages must answer before either is created or written.
    probe_optuna_storage(config.optuna_storage)
    optuna_pool, mlflow_pool = agent_pools(agent.n_jobs)
    named = explicit_tracking_uri(config)

    def open_study() -> SweepStudy:
        storage = open_optuna_storage(config.optuna_storage, optuna_pool.size, optuna_pool.overflow)
        return SweepStudy(storage, config, PointSource(config), agent.agent)

    study = None
    if named is None and storage_exists(config.optuna_storage):  # a store recorded there wins
        study = open_study()
    found = study is not None and study.find()
    tracking_uri = sweep_tracking_uri(config, study if found else None)
    probe_mlflow_storage(tracking_uri)
    if study is None:
        study = open_study()
        found = study.find()
    created = False
    warm = gather_warm_start(config, tracking_uri, study.source) if not found and config.warm_start else None
    if not found:  # whoever creates the study records its store with it, before the parent run
        created = study.create_or_find(first_records(tracking_uri))
    if created and warm is not None:  # the creator alone, before the parent run the others await
        enter_warm_start(study.store, study.study_id, study.source, warm)
        agent.reporter.event(f"{config.identity}: {warm.summary()}")
    if not created:
        study.check_drift()  # before anything is written for this config
    if named is None:
        # Agents started together from different directories agree on one store: the one the
        # study's creator recorded with it.
        agreed = agreed_tracking_uri(study, created, tracking_uri)
        if agreed != tracking_uri:
            tracking_uri = agreed
            probe_mlflow_storage(tracking_uri)
    client = open_mlflow_tracking(tracking_uri, mlflow_pool, AGENT_APPLICATION)
    recorder = Recorder(client, config)
    parent_id = study.create_or_attach(recorder.create_parent, recorder.parent_state)
    record_tracking_uri(study, tracking_uri)
    hint = tag_agent_run(config, parent_id, recorder.experiment_id, client.tracking_uri)
    if hint:
        agent.reporter.event(hint)
    launcher = make_launcher(config, client.tracking_uri, config.log_dir, checked, store_turn(client))
    session = session_class(agent, config, study, recorder, parent_id, launcher, _progress(config, study))
    session.checked = checked
    return session


def _progress(config: SweepConfig, study: SweepStudy) -> SweepProgress:
    """The progress shown from the start: what the sweep's trials so far already count."""
    tallies = study.progress()
    progress = SweepProgress(
        name=config.identity,
        total=study.budget,
        done=tallies.complete,
        failed=tallies.failed_for_good,
        pruned=tallies.pruned,
        direction=config.objective.direction,
    )
    if tallies.best is not None:
        progress.best = tallies.best.value
    return progress
