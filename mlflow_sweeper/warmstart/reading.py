"""Reading earlier results: a sweep's trials from its Optuna storage, without writing anything."""

from __future__ import annotations

from optuna.trial import FrozenTrial

from ..coordination.store import read_trials
from ..storages import exists as storage_exists
from ..storages import open_optuna_storage, probe_optuna_storage


def sweep_trials(url: str, identity: str) -> list[FrozenTrial] | None:
    """Every trial of sweep `identity` (`experiment/sweep_name`) in the storage at `url`, as the
    sweep reads them (`read_trials`); None when there is no such sweep (or no storage). Nothing is
    created."""
    if not storage_exists(url):
        return None
    probe_optuna_storage(url)
    storage = open_optuna_storage(url)
    try:
        study_id = storage.get_study_id_from_name(identity)
    except KeyError:
        return None
    return read_trials(storage, study_id)


def sweep_names(url: str) -> set[str]:
    """The names of the sweeps (studies) in the storage at `url`; nothing is created."""
    if not storage_exists(url):
        return set()
    storage = open_optuna_storage(url)
    return {study.study_name for study in storage.get_all_studies()}


def sweep_user_attrs(url: str, identity: str) -> dict:
    """The user attrs of sweep `identity`'s study (what its agents recorded), or {}."""
    if not storage_exists(url):
        return {}
    storage = open_optuna_storage(url)
    try:
        return storage.get_study_user_attrs(storage.get_study_id_from_name(identity))
    except KeyError:
        return {}
