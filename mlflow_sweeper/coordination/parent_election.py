"""The one parent run of a sweep, recorded on its study: the agent that creates the study
creates the parent run; the others wait for its id, and one of them, elected, creates it should
the creator be gone before recording it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from optuna.exceptions import DuplicatedStudyError

from ..config import SweepConfig
from ..errors import StorageError
from .companions import create_companion
from .liveness import Heartbeat
from .names import AGENT, CREATOR, PARENT_ATTR, TAKEOVER_SINCE, takeover_study_name
from .store import RetryingStorage

log = logging.getLogger(__name__)

PARENT_WAIT_SECONDS = 60.0
MAX_TAKEOVER_ROUNDS = 20
PARENT_NOTICE_SECONDS = 3.0  # a wait longer than a creator's start-up is said on the console


class ParentRecord:
    """The parent run id on study `study_id`; `complete_definition` writes what defines the
    sweep where its creator did not (an agent that takes the parent over calls it first)."""

    def __init__(
        self,
        store: RetryingStorage,
        config: SweepConfig,
        liveness: Heartbeat,
        study_id: int,
        complete_definition: Callable[[], None],
    ) -> None:
        self.store = store
        self.config = config
        self.liveness = liveness
        self.study_id = study_id
        self.complete_definition = complete_definition
        self._rounds_seen: dict[str, float] = {}  # takeover rounds: when this agent first saw each

    def run_id(self) -> str | None:
        return self.store.get_study_user_attrs(self.study_id).get(PARENT_ATTR)

    def record(self, parent: str) -> str:
        self.store.set_study_user_attr(self.study_id, PARENT_ATTR, parent)
        return parent

    def wait_for(self, create_parent: Callable[[], str], parent_state: Callable[[str], str]) -> str:
        """Wait for the creating agent to record the parent run. Should it be gone first (seen at
        once when it died on this host, else after PARENT_WAIT_SECONDS), the one agent elected
        among those waiting creates it, and the others wait for that one in turn."""
        started = time.monotonic()
        awaited = str(self.store.get_study_system_attrs(self.study_id).get(CREATOR, ""))
        deadline, told = started + PARENT_WAIT_SECONDS, False
        delay = 0.05
        while True:
            parent = self.run_id()
            if parent:
                if parent_state(parent) == "missing":
                    raise parent_not_here(self.config, parent)
                return parent
            now = time.monotonic()
            died = self.liveness.owner_dead_on_this_host(awaited)
            if died or now > deadline:
                # gone: killed, or interrupted (Ctrl-C) before it recorded the parent
                why = (
                    f"the agent that created the sweep, {awaited}, stopped first"
                    if died
                    else f"none recorded within {PARENT_WAIT_SECONDS:.0f} s"
                )
                elected, awaited, left = self._take_over()
                if elected:
                    log.warning("%s has no parent run (%s): creating it", self.config.identity, why)
                    self.complete_definition()  # where its creator died before writing it
                    return self.record(create_parent())
                deadline = now + left  # the elected agent's time
            if not told and now - started > PARENT_NOTICE_SECONDS:  # say why it waits
                told = True
                log.warning(
                    "%s: waiting up to %.0f s for the agent that created it to record its parent run "
                    "(should that agent be gone, this one records it then)",
                    self.config.identity,
                    PARENT_WAIT_SECONDS,
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _take_over(self) -> tuple[bool, str, float]:
        """An election of the agent that creates the parent run in place of the sweep's creator:
        (elected, the agent elected, how long it has to record it). Round after round, the one
        agent that creates the round's study is elected (creating a study is atomic in every
        storage); a round whose elected agent is gone (dead on this host, or past its time)
        gives way to the next."""
        identity = self.config.identity
        for round_ in range(1, MAX_TAKEOVER_ROUNDS + 1):
            name = takeover_study_name(identity, round_)
            try:
                study_id = create_companion(self.store, name, identity)
            except DuplicatedStudyError:
                elected, left = self._round_of(name)
                if elected is None or (left > 0 and not self.liveness.owner_dead_on_this_host(elected)):
                    return False, elected or "", max(left, 0.0)
                continue
            self.store.set_study_system_attr(study_id, AGENT, self.liveness.agent)
            self.store.set_study_system_attr(study_id, TAKEOVER_SINCE, time.time())
            return True, self.liveness.agent, PARENT_WAIT_SECONDS
        raise StorageError(
            f"sweep '{identity}' has no parent run and every agent elected to create it left first; "
            f"run `mlflow-sweeper delete {self.config.path}` and start it again"
        )

    def _round_of(self, name: str) -> tuple[str | None, float]:
        """(the agent a takeover round elected, seconds it has left); None when the round is gone
        (deleted with the sweep), or its agent not written yet (then it has its full time, counted
        from when this agent first saw the round)."""
        try:
            attrs = self.store.get_study_system_attrs(self.store.get_study_id_from_name(name))
        except KeyError:
            return None, 0.0
        first_seen = self._rounds_seen.setdefault(name, time.time())
        since = float(attrs.get(TAKEOVER_SINCE, first_seen))
        return attrs.get(AGENT) and str(attrs[AGENT]), since + PARENT_WAIT_SECONDS - time.time()


def parent_not_here(config: SweepConfig, parent: str) -> StorageError:
    """The refusal (exit 2) when the sweep's recorded parent run is not in the MLflow store the
    agent was pointed at."""
    return StorageError(
        f"sweep '{config.identity}' in the Optuna storage has parent run {parent}, which is not "
        "in this MLflow storage. Point 'mlflow_storage' at the tracking store that holds it, or "
        f"start over with `mlflow-sweeper delete {config.path}`."
    )
