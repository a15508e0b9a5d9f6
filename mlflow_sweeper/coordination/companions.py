"""The companion studies (`<sweep>#claims`, `<sweep>#close`) as a person finds them: each says
what it is, and an agent that finds one gone says so instead of failing on a missing id.

Tools like optuna-dashboard list them beside the sweep, each with a delete button; deleting the
ledger mid-sweep would break exactly-once without a word.
"""

from __future__ import annotations

import optuna
from optuna.exceptions import DuplicatedStudyError

from ..errors import StorageError
from .names import COMPANION_OF_ATTR, PURPOSE_ATTR, SLOT, WARM_ATTR, claims_study_name, companion_purpose
from .store import RetryingStorage, find_study


def ensure_companion(store: RetryingStorage, name: str, identity: str) -> int:
    """The id of companion study `name`, created (with its explaining attrs) if missing; safe
    when many agents create it at once."""
    try:
        return create_companion(store, name, identity)
    except DuplicatedStudyError:
        return store.get_study_id_from_name(name)


def create_companion(store: RetryingStorage, name: str, identity: str) -> int:
    """Create companion study `name` with its explaining attrs; DuplicatedStudyError when another
    agent did first (of many at once, exactly one creates it)."""
    study_id = store.create_new_study([optuna.study.StudyDirection.MINIMIZE], name)
    store.set_study_user_attr(study_id, COMPANION_OF_ATTR, identity)
    store.set_study_user_attr(study_id, PURPOSE_ATTR, companion_purpose(identity, name))
    return study_id


def missing_studies(store: RetryingStorage, names: list[str]) -> list[str]:
    """Those of `names` not in the storage (any more)."""
    missing = []
    for name in names:
        try:
            store.get_study_id_from_name(name)
        except KeyError:
            missing.append(name)
    return missing


def gone_message(identity: str, missing: list[str], when: str = "while this agent ran it") -> str:
    """Why the agent stops, when studies of its sweep were deleted while it ran (or before it
    started: `when`)."""
    if identity in missing:
        return f"{identity}: the sweep was deleted {when}"
    shown = " and ".join(f"'{name}'" for name in missing)
    return (
        f"{identity}: the sweep's companion stud{'y' if len(missing) == 1 else 'ies'} {shown} "
        f"(its budget ledger and close election) was deleted {when}, so the sweep cannot go on "
        "running each point exactly once. Delete the rest with `mlflow-sweeper delete CONFIG` and "
        "run the sweep again"
    )


def refuse_a_lost_ledger(store: RetryingStorage, identity: str, study_id: int) -> None:
    """A sweep whose claims ledger was deleted after its trials began would hand out every point
    again: refused (exit 2). The ledger is missing, or empty (made again since, by `status`):
    every trial of the sweep's own came from a claim, made after the ledger (earlier results
    entered do not count)."""
    ledger = claims_study_name(identity)
    found = find_study(store, ledger)
    if found is not None and store.get_n_trials(found) > 0:
        return
    trials = store.get_all_trials(study_id, deepcopy=False)
    if any(SLOT in t.system_attrs and WARM_ATTR not in t.user_attrs for t in trials):
        raise StorageError(gone_message(identity, [ledger], "before this agent started"))


def missing_companion_lines(missing: list[str]) -> list[str]:
    """`status`'s word on a companion study someone deleted (a new, empty one replaced it)."""
    return [
        f"  warning: companion study '{name}' was deleted (it holds what exactly-once relies on); "
        "its points may run again: `mlflow-sweeper delete` and a fresh run are the safe way on"
        for name in missing
    ]
