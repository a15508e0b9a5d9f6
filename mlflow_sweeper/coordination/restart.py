"""Starting a sweep over under a changed config, when it has learned nothing yet.

A sweep whose search space or objective changed is refused, unless no trial of it has completed
(or been pruned) and none is running: then nothing is lost by starting over. Optuna cannot delete
trials or rename studies, so the sweep's three studies are deleted and the main one recreated
under the same name, with the same user attributes (its parent run id above all), the new
fingerprint and the next generation number.

Exactly one agent starts a generation over: whoever creates the lock study
`<identity>#starting-over-<generation>` (study names are unique in every storage). It checks
again under the lock that the sweep is still the one it judged (same generation, same
fingerprint, still nothing learned), then deletes and recreates, then drops the lock. Every other
agent waits for the lock to go and then looks at the sweep afresh. A lock left by an agent that
died while starting over is named in a clear error.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, TrialState

from ..config import SweepConfig
from ..errors import StorageError
from .names import (
    CONFIG_ATTR,
    FINGERPRINT_ATTR,
    GENERATION,
    RUN_ATTR,
    WARM_SOURCES,
    starting_over_name,
    study_names,
)
from .store import RetryingStorage, find_study

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 60.0
# A trial in one of these has taught the sweep something, or may still: the config is then fixed.
LEARNED_OR_RUNNING = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


@dataclass
class StartedOver:
    """What starting over left behind: the earlier attempts' MLflow runs, to be soft-deleted."""

    run_ids: list[str] = field(default_factory=list)
    generation: int = 1  # how often the sweep has started over, this time included

    def message(self, identity: str) -> str:
        runs = len(self.run_ids)
        return (
            f"{identity}: no trial had completed, so the sweep starts over under the changed config "
            f"(same parent run; {runs} earlier attempt run{'' if runs == 1 else 's'} deleted, restorable "
            "in the MLflow UI)"
        )


class StartOverHooks:
    """What the agent starting a sweep over does besides: `before`, while nothing is written yet
    (read the config's earlier results: a missing source stops it there); `recreated`, on the new
    study before any agent may claim from it (enter those results). Nothing, by default."""

    def before(self) -> None:
        pass

    def recreated(self, study_id: int) -> None:
        pass


NO_HOOKS = StartOverHooks()


def record_warm_sources(store: RetryingStorage, study_id: int, config: SweepConfig) -> None:
    """The `warm_start` a sweep is created with: a later config with another is a change."""
    sources = [source.describe() for source in config.warm_start]
    if sources:
        store.set_study_system_attr(study_id, WARM_SOURCES, json.dumps(sources))


def nothing_learned(trials: list[FrozenTrial]) -> bool:
    return not any(t.state in LEARNED_OR_RUNNING for t in trials)


def generation_of(store: RetryingStorage, study_id: int) -> int:
    return int(store.get_study_system_attrs(study_id).get(GENERATION, 0))


class StartOver:
    """One agent's attempt to start the sweep of `config` over; see the module's docstring."""

    def __init__(self, store: RetryingStorage, config: SweepConfig, recreated=NO_HOOKS.recreated):
        self.store = store
        self.config = config
        self.recreated = recreated  # called with the new study's id, under the lock

    def run(self, study_id: int, fingerprint: str) -> tuple[int, StartedOver] | None:
        """Start over the study `study_id` as judged (stored `fingerprint`): (the new study id,
        what was left behind). None when the sweep changed meanwhile (another agent started it
        over, or a trial completed): the caller looks again."""
        generation = generation_of(self.store, study_id)
        lock = starting_over_name(self.config.identity, generation + 1)
        try:
            lock_id = self.store.create_new_study([optuna.study.StudyDirection.MINIMIZE], lock)
        except DuplicatedStudyError:
            self._wait_for_lock(lock)
            return None
        try:
            if not self._still_as_judged(study_id, generation, fingerprint):
                return None
            return self._recreate(study_id, generation + 1)
        finally:
            self.store.delete_study(lock_id)

    def _still_as_judged(self, study_id: int, generation: int, fingerprint: str) -> bool:
        current = find_study(self.store, self.config.identity)
        if current != study_id:
            return False
        attrs = self.store.get_study_system_attrs(study_id)
        if int(attrs.get(GENERATION, 0)) != generation or attrs.get(FINGERPRINT_ATTR) != fingerprint:
            return False
        return nothing_learned(self.store.get_all_trials(study_id, deepcopy=False))

    def _recreate(self, study_id: int, generation: int) -> tuple[int, StartedOver]:
        """Delete the sweep's studies and create the main one afresh; its user attributes (the
        parent run, the store it records) first, the generation last (it says the study is whole)."""
        trials = self.store.get_all_trials(study_id, deepcopy=False)
        run_ids = [str(t.user_attrs[RUN_ATTR]) for t in trials if t.user_attrs.get(RUN_ATTR)]
        user_attrs = self.store.get_study_user_attrs(study_id)
        for name in reversed(study_names(self.config.identity)):  # the main study last
            found = find_study(self.store, name)
            if found is not None:
                self.store.delete_study(found)
        directions = self.config.objective.study_directions
        try:
            new_id = self.store.create_new_study(directions, self.config.identity)
        except DuplicatedStudyError:  # an agent that found no sweep created it meanwhile
            return self.store.get_study_id_from_name(self.config.identity), StartedOver(run_ids, generation)
        for key, value in user_attrs.items():
            if key != CONFIG_ATTR:
                self.store.set_study_user_attr(new_id, key, value)
        self.store.set_study_user_attr(new_id, CONFIG_ATTR, str(self.config.path))
        record_warm_sources(self.store, new_id, self.config)
        fingerprint = json.dumps(self.config.fingerprint(), sort_keys=True)
        self.store.set_study_system_attr(new_id, FINGERPRINT_ATTR, fingerprint)
        self.recreated(new_id)  # under the lock: no agent claims from the study before it is done
        self.store.set_study_system_attr(new_id, GENERATION, generation)
        log.debug("%s: started over (generation %d)", self.config.identity, generation)
        return new_id, StartedOver(run_ids, generation)

    def _wait_for_lock(self, lock: str) -> None:
        """Another agent is starting the sweep over: wait until it is done."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.05
        while find_study(self.store, lock) is not None:
            if time.monotonic() > deadline:
                raise StorageError(
                    f"sweep '{self.config.identity}': another agent began starting it over and did not "
                    f"finish (its lock study '{lock}' is still there). If no agent is running, run "
                    f"`mlflow-sweeper delete {self.config.path}` and start again."
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
