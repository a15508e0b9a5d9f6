"""The Optuna side of a sweep: one study, shared by every agent, and its claims ledger.

How agents share work without a shared filesystem, using only operations every Optuna storage
makes atomic (RDB row locks and transactions, the journal's ordered log):

* Budget slots are claimed by creating a trial in a companion study `<identity>#claims`:
  trial numbers are dense and unique per study in every storage, so claim `n` is slot `n`,
  handed to exactly one agent. A grid point is its slot's index, so no point runs twice and
  claiming costs the same at trial 10 and at trial 100,000.
* A claim stays RUNNING until its trial exists in the main study, so an agent checking whether
  the sweep is finished never misses a trial that is being created. Claims past the budget are
  parked as WAITING, to be reused if the budget is raised.
* Re-runs (retries, trials of dead or interrupted agents) are WAITING trials of the main study
  with the same slot and parameters; taking one is Optuna's atomic WAITING -> RUNNING update.
* Running trials carry a heartbeat; a trial whose agent is silent for `stale_after` is failed
  by whichever agent wins the RUNNING -> FAIL update, and re-queued.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from . import compat
from .algorithms import PointSource
from .config import SweepConfig
from .errors import DriftError, StorageError, SweeperError
from .storages import retry

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
FINGERPRINT_ATTR = "sweeper:fingerprint"
SLOT = "sweeper:slot"
ATTEMPT = "sweeper:attempt"
AGENT = "sweeper:agent"
HEARTBEAT = "sweeper:heartbeat"
STALE_AFTER = "sweeper:stale_after"
REPLACES_RUN = "sweeper:replaces_run"
REASON = "fail_reason"
CLAIMS_SUFFIX = "#claims"
ACTIVE = (TrialState.WAITING, TrialState.RUNNING)
WAITING_CHECK_SECONDS = 0.5
CLAIM_STALE_SECONDS = 60.0


def claims_study_name(identity: str) -> str:
    return identity + CLAIMS_SUFFIX


def agent_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Work:
    """A trial this agent owns: RUNNING in the main study, parameters fixed."""

    trial_id: int
    number: int
    slot: int
    attempt: int
    params: dict
    replaces_run: str | None = None
    run_id: str | None = None


@dataclass
class Progress:
    budget: int
    complete: int
    running: int
    waiting: int
    failed_for_good: int
    best: FrozenTrial | None

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.complete - self.failed_for_good - self.running)


class SweepStudy:
    """One sweep's Optuna study and claims ledger, as seen by one agent."""

    def __init__(self, storage, config: SweepConfig, source: PointSource, agent: str):
        self.storage = storage
        self.config = config
        self.source = source
        self.agent = agent
        self.host, self.pid = agent.split(":")[0], os.getpid()
        self.study_id: int = -1
        self.claims_id: int = -1
        self._study: optuna.Study | None = None
        self._lock = threading.Lock()
        self.exhausted_seen = False  # this agent has seen the last slot of the budget claimed
        self._closed_here = False  # PLACEHOLDER close election, see elect_closer
        self._waiting_checked = -math.inf

    # ---- creation and identity -------------------------------------------------------------

    @property
    def direction(self) -> optuna.study.StudyDirection:
        if self.config.objective.direction == "maximize":
            return optuna.study.StudyDirection.MAXIMIZE
        return optuna.study.StudyDirection.MINIMIZE

    def find(self) -> bool:
        """Attach to an existing sweep; False when there is none."""
        try:
            self.study_id = retry(
                lambda: self.storage.get_study_id_from_name(self.config.identity), "find study"
            )
        except KeyError:
            return False
        self.claims_id = self._ensure_claims_study()
        return True

    def create_or_attach(self, create_parent: Callable[[], str], parent_state: Callable[[str], str]) -> str:
        """Create the sweep or join it; returns the parent run id (exactly one per sweep).

        The agent that creates the study creates the parent run; the others wait for its id.
        """
        name = self.config.identity
        created = False
        try:
            self.study_id = retry(
                lambda: self.storage.create_new_study([self.direction], name), "create study"
            )
            created = True
        except DuplicatedStudyError:
            self.study_id = retry(lambda: self.storage.get_study_id_from_name(name), "find study")
        if created:
            self._set_study_attrs_on_create()
        else:
            self.check_drift()
        self.claims_id = self._ensure_claims_study()
        if created:
            return self._record_parent(create_parent())
        return self._wait_for_parent(create_parent, parent_state)

    def _set_study_attrs_on_create(self) -> None:
        fingerprint = json.dumps(self.config.fingerprint(), sort_keys=True)
        retry(
            lambda: self.storage.set_study_system_attr(self.study_id, FINGERPRINT_ATTR, fingerprint), "attrs"
        )
        retry(
            lambda: self.storage.set_study_user_attr(self.study_id, "sweeper_config", str(self.config.path)),
            "attrs",
        )

    def _ensure_claims_study(self) -> int:
        name = claims_study_name(self.config.identity)
        try:
            return retry(
                lambda: self.storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], name),
                "create claims",
            )
        except DuplicatedStudyError:
            return retry(lambda: self.storage.get_study_id_from_name(name), "find claims")

    def _wait_for_parent(self, create_parent: Callable[[], str], parent_state: Callable[[str], str]) -> str:
        """Wait for the creating agent to record the parent run; take over if it died first."""
        deadline = time.monotonic() + 60.0
        delay = 0.05
        while True:
            parent = self.parent_run_id()
            if parent:
                state = parent_state(parent)
                if state == "missing":
                    raise StorageError(
                        f"sweep '{self.config.identity}' in the Optuna storage has parent run {parent}, "
                        "which is not in this MLflow storage. Point 'mlflow_storage' at the tracking "
                        f"store that holds it, or start over with `mlflow-sweeper delete {self.config.path}`."
                    )
                return parent
            if time.monotonic() > deadline:
                log.warning("the agent that created %s left no parent run; creating it", self.config.identity)
                return self._record_parent(create_parent())
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _record_parent(self, parent: str) -> str:
        retry(lambda: self.storage.set_study_user_attr(self.study_id, PARENT_ATTR, parent), "set parent")
        return parent

    def parent_run_id(self) -> str | None:
        attrs = retry(lambda: self.storage.get_study_user_attrs(self.study_id), "study attrs")
        return attrs.get(PARENT_ATTR)

    def check_drift(self) -> None:
        """Refuse a config whose search space, algorithm or objective differs from the stored one."""
        attrs = retry(lambda: self.storage.get_study_system_attrs(self.study_id), "study attrs")
        stored_text = attrs.get(FINGERPRINT_ATTR)
        if stored_text is None:
            return  # created a moment ago by another agent that has not written it yet
        stored = json.loads(stored_text)
        current = json.loads(json.dumps(self.config.fingerprint(), sort_keys=True))
        changed = [key for key in sorted(set(stored) | set(current)) if stored.get(key) != current.get(key)]
        if changed:
            details = "; ".join(f"{k}: stored {stored.get(k)!r}, now {current.get(k)!r}" for k in changed)
            raise DriftError(
                f"{self.config.path}: sweep '{self.config.identity}' already exists with a different "
                f"{', '.join(changed)} ({details}). To keep both, give this config a new "
                f"'sweep_name'; to start over, run `mlflow-sweeper delete {self.config.path}` first. "
                "Only max_trials, max_retries, stale_after and trial_timeout may change on resume."
            )

    # ---- claiming work ---------------------------------------------------------------------

    @property
    def budget(self) -> int:
        return self.source.budget

    def claim(self) -> Work | None:
        """The next trial for this agent: a re-run first, then a fresh slot; None when none is left.

        Re-runs are rare, so the queue is looked at every WAITING_CHECK_SECONDS (and always once
        no fresh slot is left), which keeps a fresh claim at three storage transactions.
        """
        now = time.monotonic()
        looked = self.exhausted_seen or now - self._waiting_checked >= WAITING_CHECK_SECONDS
        if looked:
            self._waiting_checked = now
            work = self._pop_waiting()
            if work is not None:
                return work
        work = self._claim_fresh()
        if work is None and not looked:
            work = self._pop_waiting()
        return work

    def _pop_waiting(self) -> Work | None:
        waiting = retry(
            lambda: self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.WAITING,)),
            "list waiting",
        )
        for trial in waiting:
            if not self._take(trial._trial_id):
                continue
            self._set_trial_system_attrs(trial._trial_id, self._owner_attrs())
            return Work(
                trial_id=trial._trial_id,
                number=trial.number,
                slot=int(trial.system_attrs[SLOT]),
                attempt=int(trial.system_attrs.get(ATTEMPT, 1)),
                params=dict(trial.params),
                replaces_run=trial.system_attrs.get(REPLACES_RUN),
            )
        return None

    def _owner_attrs(self) -> dict:
        """Who runs a trial, when it last beat, and how long its owner may stay silent."""
        return {AGENT: self.agent, HEARTBEAT: time.time(), STALE_AFTER: self.config.stale_after}

    def _take(self, trial_id: int) -> bool:
        """Optuna's atomic WAITING -> RUNNING; False when another agent took it first."""
        try:
            return bool(
                retry(lambda: self.storage.set_trial_state_values(trial_id, TrialState.RUNNING), "take")
            )
        except UpdateFinishedTrialError:
            return False
        except Exception as exc:  # noqa: BLE001 - a lost race on SQLite surfaces as an error
            log.debug("lost the race for trial %s: %s", trial_id, exc)
            return False

    def _claim_fresh(self) -> Work | None:
        slot = self._claim_slot()
        if slot is None:
            return None
        claim_trial_id, slot = slot
        try:
            work = self._create_trial(slot)
        except BaseException:
            # Give the slot back so another agent runs it.
            self._park(claim_trial_id)
            raise
        retry(
            lambda: self.storage.set_trial_state_values(
                claim_trial_id, TrialState.COMPLETE, [float(work.number)]
            ),
            "close claim",
        )
        return work

    def _claim_slot(self) -> tuple[int, int] | None:
        """A budget slot for this agent: a new claim while the budget lasts, then parked ones.

        No count comes first: a claim past the budget is parked (WAITING) for a later, larger
        budget, and from then on this agent only looks for parked claims below the budget.
        """
        if not self.exhausted_seen:
            claim_id, number = retry(
                lambda: compat.create_trial_numbered(self.storage, self.claims_id), "claim"
            )
            if number < self.budget:
                self.exhausted_seen = number == self.budget - 1
                return claim_id, number
            self._park(claim_id)
            self.exhausted_seen = True
        return self._take_parked()

    def _take_parked(self) -> tuple[int, int] | None:
        """A parked claim below the budget: left by a smaller budget or a failed trial creation."""
        parked = retry(
            lambda: self.storage.get_all_trials(self.claims_id, deepcopy=False, states=(TrialState.WAITING,)),
            "list parked",
        )
        for claim in parked:
            if claim.number < self.budget and self._take(claim._trial_id):
                return claim._trial_id, claim.number
        return None

    def _park(self, claim_trial_id: int) -> None:
        try:
            retry(lambda: self.storage.set_trial_state_values(claim_trial_id, TrialState.WAITING), "park")
        except Exception:  # noqa: BLE001
            log.exception("could not park claim %s", claim_trial_id)

    def _create_trial(self, slot: int) -> Work:
        attrs = {SLOT: slot, ATTEMPT: 1, **self._owner_attrs()}
        params = self.source.fixed_point(slot)
        if params is not None:
            trial_id, number = self._create_with(params, attrs, TrialState.RUNNING)
        else:
            trial_id, params = self._sample(slot, attrs)
            number = retry(lambda: self.storage.get_trial_number_from_id(trial_id), "trial number")
        return Work(trial_id=trial_id, number=number, slot=slot, attempt=1, params=params)

    def _create_with(self, params: dict, attrs: dict, state: TrialState) -> tuple[int, int]:
        distributions = self.source.distributions_for(params)
        template = _template(state, params, distributions, attrs)
        return retry(
            lambda: compat.create_trial_numbered(self.storage, self.study_id, template), "create trial"
        )

    def _sample(self, slot: int, attrs: dict) -> tuple[int, dict]:
        """Create a trial and ask the sampler (TPE, continuous random) for its parameters.

        Goes through the Study's own (caching) storage, as `Study.ask` does, with the trial
        history re-read for every sample. The slot is recorded only once sampling succeeded,
        so a failed sample leaves a failed trial that owns no point.
        """
        with self._lock:
            if self._study is None:
                self._study = optuna.load_study(study_name=self.config.identity, storage=self.storage)
            study = self._study
            study.sampler = self.source.sampler(slot)
            compat.forget_cached_trials(study)
            storage = compat.study_storage(study)
            unowned = {k: v for k, v in attrs.items() if k != SLOT}
            trial_id = retry(
                lambda: storage.create_new_trial(
                    self.study_id, template_trial=_template(TrialState.RUNNING, {}, {}, unowned)
                ),
                "create trial",
            )
            try:
                trial = optuna.Trial(study, trial_id)
                params = {
                    name: _suggest(trial, name, dist) for name, dist in self.source.distributions.items()
                }
            except BaseException as exc:
                self._set_reason(trial_id, f"sampling failed: {exc}")
                retry(lambda: storage.set_trial_state_values(trial_id, TrialState.FAIL), "fail")
                raise
            retry(lambda: storage.set_trial_system_attr(trial_id, SLOT, slot), "slot")
            return trial_id, params

    # ---- while running -----------------------------------------------------------------------

    def set_run_id(self, work: Work, run_id: str) -> None:
        work.run_id = run_id
        retry(lambda: self.storage.set_trial_user_attr(work.trial_id, RUN_ATTR, run_id), "set run id")

    def heartbeat(self, trial_ids: Iterable[int]) -> None:
        now = time.time()
        for trial_id in trial_ids:
            try:
                retry(
                    lambda tid=trial_id: self.storage.set_trial_system_attr(tid, HEARTBEAT, now),
                    "heartbeat",
                    attempts=3,
                )
            except UpdateFinishedTrialError:
                pass
            except Exception as exc:  # noqa: BLE001 - a missed beat is not fatal
                log.warning("heartbeat failed: %s", exc)

    def _set_trial_system_attrs(self, trial_id: int, attrs: dict) -> None:
        for key, value in attrs.items():
            retry(lambda k=key, v=value: self.storage.set_trial_system_attr(trial_id, k, v), "trial attrs")

    # ---- ending a trial -----------------------------------------------------------------------

    def complete(self, work: Work, value: float | None) -> None:
        values = None if value is None else [value]
        retry(lambda: self.storage.set_trial_state_values(work.trial_id, TrialState.COMPLETE, values), "tell")

    def fail(
        self,
        work: Work,
        reason: str,
        *,
        retry_it: bool,
        count_attempt: bool = True,
        old_run: str | None = None,
    ) -> bool:
        """Fail the trial; re-queue its point first when it may run again. True if re-queued."""
        self._set_reason(work.trial_id, reason)
        requeued = False
        if retry_it:
            attempt = work.attempt + 1 if count_attempt else work.attempt
            if attempt <= 1 + self.config.max_retries:
                self.requeue(work.params, work.slot, attempt, old_run)
                requeued = True
        # Re-queued before failing, so the sweep never looks finished in between.
        with contextlib.suppress(UpdateFinishedTrialError):
            retry(lambda: self.storage.set_trial_state_values(work.trial_id, TrialState.FAIL), "tell fail")
        return requeued

    def _set_reason(self, trial_id: int, reason: str) -> None:
        with contextlib.suppress(UpdateFinishedTrialError):
            retry(lambda: self.storage.set_trial_user_attr(trial_id, REASON, reason[:2000]), "reason")

    def requeue(self, params: dict, slot: int, attempt: int, old_run: str | None) -> None:
        attrs = {SLOT: slot, ATTEMPT: attempt}
        if old_run:
            attrs[REPLACES_RUN] = old_run
        self._create_with(params, attrs, TrialState.WAITING)

    def requeue_trial(self, trial: FrozenTrial) -> None:
        """Queue the next attempt of a failed trial's point."""
        attempt = int(trial.system_attrs.get(ATTEMPT, 1)) + 1
        self.requeue(
            dict(trial.params), int(trial.system_attrs[SLOT]), attempt, trial.user_attrs.get(RUN_ATTR)
        )

    def reclaim_stale(self, own_running: set[int]) -> list[tuple[FrozenTrial, str, bool]]:
        """Fail RUNNING trials whose agent went silent (or died on this host) and re-queue them.

        Returns the reclaimed trials, why, and whether each was re-queued; only the agent that wins
        the RUNNING -> FAIL update reclaims a trial.
        """
        now = time.time()
        running = retry(
            lambda: self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.RUNNING,)),
            "list running",
        )
        reclaimed = []
        for trial in running:
            if trial._trial_id in own_running:
                continue
            owner = str(trial.system_attrs.get(AGENT, ""))
            beat = trial.system_attrs.get(HEARTBEAT)
            if beat is None and trial.datetime_start is not None:
                beat = trial.datetime_start.timestamp()
            # The owner beats at a pace set by its own stale_after, which may be longer than ours.
            patience = max(self.config.stale_after, float(trial.system_attrs.get(STALE_AFTER, 0)))
            dead_here = self._owner_dead_on_this_host(owner)
            if not dead_here and (beat is None or now - float(beat) < patience):
                continue
            why = (
                f"its agent {owner} died"
                if dead_here
                else f"its agent {owner or '?'} was silent for {now - float(beat):.0f} s (stale_after)"
            )
            try:
                self._set_reason(trial._trial_id, why)
                retry(
                    lambda t=trial: self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL),
                    "reclaim",
                )
            except UpdateFinishedTrialError:
                continue  # finished by its agent, or reclaimed by another one
            requeued = int(trial.system_attrs.get(ATTEMPT, 1)) < 1 + self.config.max_retries
            requeued = requeued and SLOT in trial.system_attrs
            if requeued:
                self.requeue_trial(trial)
            reclaimed.append((trial, why, requeued))
        return reclaimed

    def release_stale_claims(self) -> list[int]:
        """Claims an agent died holding, between claiming a slot and creating its trial.

        A live agent closes its claim within moments, so a claim RUNNING for CLAIM_STALE_SECONDS
        (or stale_after, if shorter) is abandoned: closed if its slot's trial exists after all,
        otherwise parked so that another agent runs the slot. Returns the slots parked.
        """
        patience = min(self.config.stale_after, CLAIM_STALE_SECONDS)
        now = dt.datetime.now()
        running = retry(
            lambda: self.storage.get_all_trials(self.claims_id, deepcopy=False, states=(TrialState.RUNNING,)),
            "list claims",
        )
        stale = [
            c for c in running
            if c.datetime_start is not None and (now - c.datetime_start).total_seconds() > patience
        ]  # fmt: skip
        if not stale:
            return []
        by_slot = {t.system_attrs.get(SLOT): t for t in self.trials() if SLOT in t.system_attrs}
        parked = []
        for claim in stale:
            trial = by_slot.get(claim.number)
            if trial is not None:
                with contextlib.suppress(UpdateFinishedTrialError):
                    retry(
                        lambda c=claim, t=trial: self.storage.set_trial_state_values(
                            c._trial_id, TrialState.COMPLETE, [float(t.number)]
                        ),
                        "close claim",
                    )
            else:
                self._park(claim._trial_id)
                parked.append(claim.number)
        return parked

    def _owner_dead_on_this_host(self, owner: str) -> bool:
        parts = owner.split(":")
        if len(parts) != 3 or parts[0] != self.host:
            return False
        try:
            pid = int(parts[1])
        except ValueError:
            return False
        return pid != self.pid and not _pid_alive(pid)

    # ---- progress and the end ------------------------------------------------------------------

    def has_active(self) -> bool:
        """Is any trial running or queued, or any slot being claimed or parked below the budget?"""
        claims = retry(
            lambda: self.storage.get_all_trials(self.claims_id, deepcopy=False, states=ACTIVE), "claims"
        )
        if any(claim.number < self.budget for claim in claims):
            return True
        active = retry(
            lambda: self.storage.get_all_trials(self.study_id, deepcopy=False, states=ACTIVE), "active"
        )
        return bool(active)

    def slots_exhausted(self) -> bool:
        """Has every slot of the budget been claimed? Claim numbers are dense, so it is enough
        that claim `budget - 1` exists: one indexed lookup, not a count of every trial."""
        try:
            retry(
                lambda: self.storage.get_trial_id_from_study_id_trial_number(self.claims_id, self.budget - 1),
                "claims",
            )
        except KeyError:
            return False
        return True

    def is_finished(self) -> bool:
        """Every slot of the budget claimed, and nothing running or queued (claims checked first)."""
        return self.slots_exhausted() and not self.has_active()

    def complete_trials(self) -> list[FrozenTrial] | None:
        """The sweep's trials once it is finished and no failed point is still owed its re-run;
        None before. One scan, only at the end."""
        if not self.is_finished():
            return None
        trials = self.trials()
        return None if self.unresolved_slots(trials) else trials

    def is_complete(self) -> bool:
        return self.complete_trials() is not None

    def trials(self) -> list[FrozenTrial]:
        return retry(lambda: self.storage.get_all_trials(self.study_id, deepcopy=False), "trials")

    def unresolved_slots(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        """Slots with no COMPLETE trial whose last attempt failed with attempts left (lost re-queue)."""
        latest: dict[int, FrozenTrial] = {}
        for trial in trials:
            slot = trial.system_attrs.get(SLOT)
            if slot is None:
                continue
            prev = latest.get(slot)
            if (
                prev is None
                or prev.state != TrialState.COMPLETE
                and (trial.state == TrialState.COMPLETE or trial.number > prev.number)
            ):
                latest[slot] = trial
        return [
            t
            for t in latest.values()
            if t.state == TrialState.FAIL
            and int(t.system_attrs.get(ATTEMPT, 1)) < 1 + self.config.max_retries
        ]

    def failed_for_good(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        by_slot: dict[int, list[FrozenTrial]] = {}
        for trial in trials:
            if SLOT in trial.system_attrs:
                by_slot.setdefault(trial.system_attrs[SLOT], []).append(trial)
        failed = []
        for group in by_slot.values():
            if any(t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING) for t in group):
                continue
            failed.append(max(group, key=lambda t: t.number))
        return sorted(failed, key=lambda t: t.number)

    def progress(self) -> Progress:
        trials = self.trials()
        counts = {state: 0 for state in TrialState}
        for trial in trials:
            counts[trial.state] += 1
        best = self.best_trial()
        return Progress(
            budget=self.budget,
            complete=counts[TrialState.COMPLETE],
            running=counts[TrialState.RUNNING],
            waiting=counts[TrialState.WAITING],
            failed_for_good=len(self.failed_for_good(trials)),
            best=best,
        )

    # ---- close election: PLACEHOLDER ---------------------------------------------------------------
    # Temporary stand-ins so the agent's close path works on this branch: the coordination package
    # replaces them with an election through the storage (exactly one agent, ever, per close epoch).
    # Until then every agent is elected once per session, as before (the close actions are
    # idempotent), which keeps today's behaviour.

    def elect_closer(self) -> bool:
        """True when this agent must run the close actions (PLACEHOLDER: once per session)."""
        return not self._closed_here

    def mark_closed(self) -> None:
        """The close actions ran (PLACEHOLDER: remembered in this process only)."""
        self._closed_here = True

    def is_closed(self) -> bool:
        """Has the sweep been closed (PLACEHOLDER: by this session)?"""
        return self._closed_here

    def best_trial(self) -> FrozenTrial | None:
        if self.config.objective.metric is None:
            return None
        try:
            return retry(lambda: self.storage.get_best_trial(self.study_id), "best trial")
        except ValueError:
            return None


def _template(state: TrialState, params: dict, distributions: dict, system_attrs: dict) -> FrozenTrial:
    return FrozenTrial(
        number=-1,
        state=state,
        value=None,
        datetime_start=dt.datetime.now() if state == TrialState.RUNNING else None,
        datetime_complete=None,
        params=params,
        distributions=distributions,
        user_attrs={},
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=-1,
    )


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise SweeperError(f"unsupported distribution {dist!r}")
