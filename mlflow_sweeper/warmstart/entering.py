"""Warm start in an agent: the earlier results gathered (reading only, before anything is
written) and entered into the study by the one agent whose `create_new_study` won, before it
records the parent run that every other agent waits for (or by the agent that takes the parent
over when that one died first; a result already entered is skipped). So they enter exactly once,
before any agent claims a trial, whatever the number of agents."""

from __future__ import annotations

import datetime as dt
import json

from optuna.trial import FrozenTrial, TrialState

from ..config import SweepConfig
from ..config.objective import Objective
from ..config.warm_start import SweepSource
from ..constraints import satisfied
from ..coordination.names import SLOT, TARGET_REACHED, WARM_ATTR, WARM_EXPERIMENT, WARM_SLOTS
from ..coordination.store import stored_values
from ..coordination.target import target_mark
from ..errors import ConfigError
from ..search.algorithms import PointSource
from ..search.values import same_value
from ..storages import exists as storage_exists
from .collect import RUN_ATTR, WarmStart, WarmTrial, collect, prepare, recorded_elsewhere


def gather(config: SweepConfig, tracking_uri: str, source: PointSource) -> WarmStart:
    """The earlier results that fit, from every source; ConfigError when a source does not exist."""
    if not storage_exists(tracking_uri):
        message, key = f"the MLflow storage {tracking_uri} holds no runs yet", "warm_start[0]"
        sweeps = [(i, s) for i, s in enumerate(config.warm_start) if isinstance(s, SweepSource)]
        if sweeps:  # where its runs are, when its agents recorded another store
            message += recorded_elsewhere(config, sweeps[0][1], tracking_uri)
            key = f"warm_start[{sweeps[0][0]}].sweep"
        raise ConfigError(str(config.path), key, message)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    return prepare(config, collect(config, client), on_grid=bool(source.strategy.records_grid))


def enter(store, study_id: int, source: PointSource, warm: WarmStart) -> dict[int, int]:
    """Each fitting result as a COMPLETE trial; a grid point it matches is marked done (its slot
    recorded, so no agent runs it). Returns {slot: trial number} of those points.

    A result already in the study (an agent taking over from a creator that died while entering)
    is not entered again."""
    entered = _entered(store, study_id)
    slots: dict[int, int] = {slot: number for number, slot in entered.values() if slot is not None}
    numbers = {run_id: number for run_id, (number, _) in entered.items()}
    for entry in warm.trials:
        if entry.run_id in entered:
            continue
        slot = grid_slot(source, entry.params)
        system_attrs: dict = dict(entry.constraints)
        if slot is not None and slot not in slots:
            system_attrs[SLOT] = slot
        _, number = store.create_trial_numbered(study_id, _completed(entry, source, system_attrs))
        numbers[entry.run_id] = number
        if slot is not None and slot not in slots:
            slots[slot] = number
    if slots:
        store.set_study_system_attr(study_id, WARM_SLOTS, json.dumps({str(k): v for k, v in slots.items()}))
    reaching = [
        (numbers[e.run_id], e.values[0]) for e in warm.trials if _reaches_target(source.config.objective, e)
    ]
    if reaching:  # a completed trial reached `spec.target`: no agent starts another
        store.set_study_system_attr(study_id, TARGET_REACHED, target_mark(*min(reaching)))
    return slots


def _reaches_target(objective: Objective, entry: WarmTrial) -> bool:
    """A feasible earlier result whose one value reaches `spec.target`, as a sweep's own would."""
    if entry.values is None or len(entry.values) != 1:
        return False
    return satisfied(entry.constraints) and objective.reached(entry.values[0])


def _completed(entry: WarmTrial, source: PointSource, system_attrs: dict) -> FrozenTrial:
    """The COMPLETE trial an earlier result enters as; without an objective it is stored with no
    value of its own, as the sweep's own trials then are."""
    now = dt.datetime.now()
    return FrozenTrial(
        number=-1,
        state=TrialState.COMPLETE,
        value=None,
        values=stored_values(TrialState.COMPLETE, entry.values),
        datetime_start=now,
        datetime_complete=now,
        params=entry.params,
        distributions=source.distributions_for(entry.params),
        user_attrs={
            RUN_ATTR: entry.run_id,
            WARM_ATTR: entry.source,
            **({WARM_EXPERIMENT: entry.experiment_id} if entry.experiment_id else {}),
        },
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=-1,
    )


def _entered(store, study_id: int) -> dict[str, tuple[int, int | None]]:
    """{run id: (trial number, grid slot or None)} of the earlier results already in the study."""
    return {
        trial.user_attrs[RUN_ATTR]: (trial.number, trial.system_attrs.get(SLOT))
        for trial in store.get_all_trials(study_id, deepcopy=False)
        if WARM_ATTR in trial.user_attrs and trial.user_attrs.get(RUN_ATTR)
    }


def grid_slot(source: PointSource, point: dict) -> int | None:
    """The slot that runs exactly `point`, when the algorithm decides its slots' points (a grid,
    random over a finite space, sensitivity's plan); None otherwise."""
    slot = source.slot_of(point)
    if slot is None:
        return None
    fixed = source.fixed_point(slot)
    if fixed is None or set(fixed) != set(point):
        return None
    return slot if all(same_value(fixed[k], point[k]) for k in point) else None
