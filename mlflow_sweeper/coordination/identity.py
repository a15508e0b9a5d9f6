"""Which sweep this is: create or attach the study, refuse a drifted config, and the one parent
run recorded on it (`parent_election`)."""

from __future__ import annotations

import json
import time

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, TrialState

from ..config import MUTABLE_HINT, SweepConfig
from ..errors import DriftError, StorageError
from ..hangup import interrupts_held
from ..secrets import redact_value
from .drift import describe_drift, drift_refusal, same_definition
from .liveness import Heartbeat
from .names import CONFIG_ATTR, CREATOR, FINGERPRINT_ATTR, WARM_ATTR, WARM_SOURCES
from .parent_election import ParentRecord
from .restart import NO_HOOKS, StartedOver, StartOver, StartOverHooks, nothing_learned, record_warm_sources
from .store import RetryingStorage, find_study

STUDY_WAIT_SECONDS = 60.0  # for a sweep's study, while an agent starting it over makes it again
MAX_START_OVER_ROUNDS = 5  # each round finds the sweep started over by another agent; one is enough


def direction_of(config: SweepConfig) -> optuna.study.StudyDirection:
    """The first objective's direction."""
    return config.objective.study_directions[0]


def directions_of(config: SweepConfig) -> list[optuna.study.StudyDirection]:
    """One study direction per objective (`minimize` without `spec`), as the objective gives them."""
    return config.objective.study_directions


class SweepIdentity:
    """The sweep's study as this agent finds or creates it, and what defines it: the config it
    was created with, against which a later config is checked."""

    def __init__(self, store: RetryingStorage, config: SweepConfig, liveness: Heartbeat):
        self.store = store
        self.config = config
        self.liveness = liveness  # this agent's id, and whether another agent died on this host
        self.study_id: int = -1
        self.created: bool | None = None  # this agent's answer of create_or_find, once asked

    def find(self) -> bool:
        try:
            self.study_id = self.store.get_study_id_from_name(self.config.identity)
        except KeyError:
            return False
        return True

    def create_or_find(self, first_records: dict[str, str] | None = None) -> bool:
        """Create the study (True) or find the one another agent created (False). Asked again,
        it gives the first answer. The creator writes `first_records` (study user attrs) before
        anything else, so agents joining at the same moment can wait for them."""
        if self.created is not None:
            return self.created
        with interrupts_held():  # the study and what defines it, whole (Ctrl-C comes after)
            try:
                directions = self.config.objective.study_directions
                self.study_id = self.store.create_new_study(directions, self.config.identity)
            except DuplicatedStudyError:
                self.study_id = self.store.get_study_id_from_name(self.config.identity)
                self.created = False
                return False
            self.store.set_study_system_attr(self.study_id, CREATOR, self.liveness.agent)
            for key, value in (first_records or {}).items():
                self.store.set_study_user_attr(self.study_id, key, value)
            self._record_definition()
        self.created = True
        return True

    def _record_definition(self) -> None:
        """What defines the sweep, against which later configs are checked (`check_drift`)."""
        record_warm_sources(self.store, self.study_id, self.config)  # before the fingerprint, as it
        fingerprint = json.dumps(redact_value(self.config.fingerprint()), sort_keys=True)
        self.store.set_study_system_attr(self.study_id, FINGERPRINT_ATTR, fingerprint)
        self.store.set_study_user_attr(self.study_id, CONFIG_ATTR, str(self.config.path))

    def check_drift(self, hooks: StartOverHooks = NO_HOOKS) -> StartedOver | None:
        """Refuse a config whose search space, algorithm, objective or warm start differs from
        the stored one, unless the sweep has learned nothing yet: then it starts over under this
        config (what that left behind is returned; None when nothing changed). `hooks`: what the
        agent does before starting over (read its earlier results) and on the new study."""
        started_over = None
        for _ in range(MAX_START_OVER_ROUNDS):
            try:
                changed = self._drift()
                if changed is None:
                    return started_over
                trials = self.store.get_all_trials(self.study_id, deepcopy=False)
                if not nothing_learned(trials):
                    self._refuse(*changed, trials)
                hooks.before()
                outcome = StartOver(self.store, self.config, hooks.recreated).run(self.study_id, changed[2])
            except KeyError:  # deleted under us by an agent starting the sweep over
                outcome = None
            if outcome is not None:
                self.study_id, started_over = outcome
            else:  # another agent started it over (or a trial completed): look again
                self.study_id = self._wait_for_study()
        raise StorageError(f"sweep '{self.config.identity}': the sweep kept changing while starting it over")

    def check_not_refused(self) -> None:
        """Raise the refusal `check_drift` would raise (a changed config of a sweep that has
        learned something), writing nothing. A sweep another agent is starting over this moment
        is not refused here: its own opening looks again."""
        try:
            changed = self._drift()
            if changed is None:
                return
            trials = self.store.get_all_trials(self.study_id, deepcopy=False)
        except KeyError:  # deleted under us by an agent starting it over
            return
        if not nothing_learned(trials):
            self._refuse(*changed, trials)

    def _wait_for_study(self) -> int:
        """The sweep's study id once it exists again (an agent starting it over recreates it)."""
        deadline = time.monotonic() + STUDY_WAIT_SECONDS
        while (found := find_study(self.store, self.config.identity)) is None:
            if time.monotonic() > deadline:
                raise StorageError(f"sweep '{self.config.identity}' vanished while starting over")
            time.sleep(0.1)
        return found

    def config_changes(self) -> list[str]:
        """How this config differs from the one the sweep was created with (read only; [] when
        it does not): what `status` says, as an agent would refuse it."""
        drift = self._drift()
        return [] if drift is None else (describe_drift(drift[0], drift[1]) or ["its definition differs"])

    def _drift(self) -> tuple[dict, dict, str] | None:
        """(stored fingerprint, current one, the stored text) when they differ, else None."""
        attrs = self.store.get_study_system_attrs(self.study_id)
        stored_text = attrs.get(FINGERPRINT_ATTR)
        if stored_text is None:
            return None  # created a moment ago by another agent that has not written it yet
        stored = json.loads(stored_text)
        current = json.loads(json.dumps(redact_value(self.config.fingerprint()), sort_keys=True))
        warm_change = self._warm_start_change(attrs.get(WARM_SOURCES))
        if warm_change is not None:
            stored["warm_start"], current["warm_start"] = warm_change
        if same_definition(stored, current):
            return None
        return stored, current, stored_text

    def _warm_start_change(self, recorded: str | None) -> tuple[list, list] | None:
        """(as recorded, as configured) when the config's `warm_start` is not the one the sweep
        was created with: its earlier results enter a sweep once, before its first trial, so a
        new one means starting over (or a new sweep). None when it is the same, or not given (the
        results in the study stay). A sweep recorded before this was checked, with earlier
        results in it, is taken to have this one. `recorded`: the study's record of it (JSON)."""
        current = [source.describe() for source in self.config.warm_start]
        if not current:  # left out: kept (KEPT_WHEN_LEFT_OUT)
            return None
        if recorded is None:
            trials = self.store.get_all_trials(self.study_id, deepcopy=False)
            return None if any(WARM_ATTR in t.user_attrs for t in trials) else ([], current)
        before = json.loads(recorded)
        as_searched = [source.describe(real=True) for source in self.config.warm_start]  # recorded so before
        return None if before in (current, as_searched) else (before, current)

    def _refuse(self, stored: dict, current: dict, _stored_text: str, trials: list[FrozenTrial]) -> None:
        changes = describe_drift(stored, current) or ["its definition differs"]
        message = drift_refusal(self.config.path, self.config.identity, changes, MUTABLE_HINT)
        if not any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials):
            message += (
                " No trial has ended with a result yet: should the running ones end without one, "
                "the sweep starts over under the changed config"
            )
        raise DriftError(message)

    @property
    def parent(self) -> ParentRecord:
        """The sweep's one parent run, as recorded on the study this identity has now."""
        return ParentRecord(self.store, self.config, self.liveness, self.study_id, self._complete_definition)

    def _complete_definition(self) -> None:
        """What defines the sweep, written by the agent that takes over the parent run where its
        creator died before writing it (kill -9)."""
        if FINGERPRINT_ATTR not in self.store.get_study_system_attrs(self.study_id):
            self._record_definition()
