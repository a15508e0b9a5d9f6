"""The coordination protocol's invariants, in process: many threads, each a separate agent with
its own `SweepStudy` (and, on the journal file and SQLite, its own storage object), against
Optuna's InMemoryStorage, a journal file, SQLite, and Optuna's gRPC proxy in front of SQLite and
PostgreSQL. No MLflow, no subprocesses for trials.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import InMemoryStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import (
    AGENT,
    ATTEMPT,
    HEARTBEAT,
    SLOT,
    STALE_AFTER,
    WAITING_CHECK_SECONDS,
    RetryPolicy,
    SweepStudy,
    Work,
    agent_id,
    close_study_name,
    tallies,
)
from mlflow_sweeper.coordination.liveness import Heartbeat
from mlflow_sweeper.coordination.names import (
    AGENT_LOST,
    CLOSE_EPOCH,
    FIRST_ATTEMPT,
    LOST,
    QUEUED,
    QUIT,
    RUN_ATTR,
    WAITING,
    study_names,
)
from mlflow_sweeper.coordination.policy import LOST_RERUNS, Rerun
from mlflow_sweeper.coordination.store import RetryingStorage, trial_template
from mlflow_sweeper.errors import StorageError, SweeperError
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.storages import open_optuna_storage

AGENTS = 8
# The proxy in front of SQLite is the same protocol as in front of PostgreSQL: run with --extended.
KINDS = (
    "memory", "journal", "sqlite", pytest.param("grpc-sqlite", marks=pytest.mark.extended), "grpc-postgres"
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def interleave_threads():
    """Switch threads as often as possible, so that agents' steps interleave as between processes."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@dataclass
class Backend:
    """One Optuna storage, opened once per agent where the kind allows (as separate agents do)."""

    kind: str
    url: str
    shared: object | None = None

    def open(self):
        if self.kind == "memory":
            return self.shared
        if self.kind == "journal":
            return JournalStorage(JournalFileBackend(self.url[len("journal://") :]))
        return open_optuna_storage(self.url)


@pytest.fixture(scope="module")
def shared_proxies(module_grpc_proxy, tmp_path_factory, request):
    """The gRPC kinds' proxies, one per storage for the whole module (a proxy costs seconds to
    start): each test's sweep has a name of its own (`make_config`), as distinct sweeps would."""
    urls: dict[str, str] = {}

    def proxy(kind: str) -> str:
        if kind not in urls:
            if kind == "grpc-sqlite":
                storage = f"sqlite:///{tmp_path_factory.mktemp('grpc') / 'optuna.db'}"
            else:
                storage = request.getfixturevalue("module_postgres_db")()
            urls[kind] = module_grpc_proxy(storage)
        return urls[kind]

    return proxy


@pytest.fixture(params=KINDS)
def backend(request, tmp_path) -> Backend:
    """Each agent opens its own storage object; through the gRPC proxy (a real `mlflow-sweeper
    proxy` subprocess in front of SQLite or PostgreSQL), each its own proxy client."""
    if request.param.startswith("grpc-"):
        return Backend("grpc", request.getfixturevalue("shared_proxies")(request.param))
    if request.param == "memory":
        return Backend("memory", f"sqlite:///{tmp_path / 'unused.db'}", InMemoryStorage())
    if request.param == "journal":
        return Backend("journal", f"journal://{tmp_path / 'optuna.log'}")
    return Backend("sqlite", f"sqlite:///{tmp_path / 'optuna.db'}")


def make_config(tmp_path: Path, backend: Backend, **keys):
    data = {
        "experiment": "exp",
        "sweep_name": tmp_path.name,  # the test's own: a shared proxy serves other tests' sweeps
        "command": "true",
        "parameters": {"x": list(range(20)), "y": list(range(10))},
        "optuna_storage": backend.url,
        "mlflow_storage": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "spec": {"direction": "minimize", "metric": "loss"},
        **keys,
    }
    path = tmp_path / f"sweep-{len(list(tmp_path.glob('sweep-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def make_agents(config, backend: Backend, n: int = AGENTS, agent: str | None = None) -> list[SweepStudy]:
    return [SweepStudy(backend.open(), config, PointSource(config), agent or agent_id()) for _ in range(n)]


def in_threads(studies: list[SweepStudy], fn: Callable[[SweepStudy], object]) -> list:
    """Run fn(study) in one thread per study, all released at the same moment; re-raise errors."""
    barrier = threading.Barrier(len(studies))
    results: list = [None] * len(studies)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(studies[i])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(studies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "an agent thread hung"
    return results


def start(studies: list[SweepStudy]) -> int:
    """Every agent creates or joins the sweep at once; returns how many parent runs were made."""
    made = []
    in_threads(studies, lambda s: s.create_or_attach(lambda: made.append(1) or "parent", lambda p: "RUNNING"))
    return len(made)


def work_until_done(study: SweepStudy, outcome: Callable[[Work], str] = lambda w: "ok") -> list[Work]:
    """An agent's worker loop: claim, end each trial as `outcome` says, until nothing is left."""
    done = []
    while True:
        work = study.claim()
        if work is None:
            if study.slots_exhausted() and not study.has_active():
                return done
            time.sleep(0.01)
            continue
        done.append(work)
        if outcome(work) == "ok":
            study.complete(work, float(work.slot))
        else:
            study.fail(work, "failed on purpose", retry_it=True)


# ---- exactly once, shared budget ---------------------------------------------------------------


def test_every_grid_point_runs_exactly_once_among_many_agents(tmp_path, backend):
    config = make_config(tmp_path, backend)
    studies = make_agents(config, backend)
    assert start(studies) == 1  # one parent run, whoever created the study
    works = [w for done in in_threads(studies, work_until_done) for w in done]

    assert sorted(w.slot for w in works) == list(range(200))
    points = {(w.params["x"], w.params["y"]) for w in works}
    assert points == {(x, y) for x in range(20) for y in range(10)}
    trials = studies[0].trials()
    assert len(trials) == 200 and all(t.state == TrialState.COMPLETE for t in trials)
    assert studies[0].is_complete()


def test_a_random_search_never_exceeds_its_budget(tmp_path, backend):
    config = make_config(
        tmp_path,
        backend,
        algorithm="random",
        max_trials=60,
        seed=7,
        parameters={"lr": {"low": 0.0, "high": 1.0}},
    )
    studies = make_agents(config, backend)
    start(studies)
    works = [w for done in in_threads(studies, work_until_done) for w in done]

    assert sorted(w.slot for w in works) == list(range(60))
    trials = studies[0].trials()
    assert len(trials) == 60 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(0.0 <= t.params["lr"] <= 1.0 for t in trials)
    assert len({t.params["lr"] for t in trials}) == 60  # agents sharing a seed drew different values


def test_agents_arriving_once_every_slot_is_claimed_add_no_claims(tmp_path, backend):
    """With hundreds of agents, one parked claim each past the budget would be listed by every
    idle look of every agent: an agent that finds the budget's last claim taken claims nothing."""
    config = make_config(tmp_path, backend, parameters={"x": list(range(5))})
    first = make_agents(config, backend, n=1)
    start(first)
    in_threads(first, work_until_done)
    claims = first[0].storage.get_all_trials(first[0].claims_id, deepcopy=False)
    assert len(claims) <= 6  # the budget's 5, and the one that told the agent it was over

    late = make_agents(config, backend, n=6)
    for study in late:
        study.find()
    assert in_threads(late, lambda s: s.claim()) == [None] * 6
    assert len(first[0].storage.get_all_trials(first[0].claims_id, deepcopy=False)) == len(claims)


def test_a_raised_budget_reuses_the_claims_parked_past_the_old_one(tmp_path, backend):
    small = make_config(tmp_path, backend, max_trials=30)
    studies = make_agents(small, backend)
    start(studies)
    in_threads(studies, work_until_done)
    larger = make_config(tmp_path, backend, max_trials=50)
    studies = make_agents(larger, backend)
    start(studies)
    works = [w for done in in_threads(studies, work_until_done) for w in done]

    assert sorted(w.slot for w in works) == list(range(30, 50))
    assert sorted(t.system_attrs[SLOT] for t in studies[0].trials()) == list(range(50))


def claims_rows_read(study: SweepStudy) -> list[int]:
    """Count the claims this agent lists from the claims study (its store, wrapped: our interface)."""
    rows = [0]
    store = study.ledger.store
    listing = store.get_all_trials

    def counted(study_id, *args, **kwargs):
        found = listing(study_id, *args, **kwargs)
        if study_id == study.claims_id:
            rows[0] += len(found)
        return found

    store.get_all_trials = counted
    return rows


def test_agents_leaving_at_the_end_never_list_the_claims_parked_past_the_budget(tmp_path, backend):
    """The end of a large sweep: every agent that raced past the budget parked one claim. Agents
    that then find nothing to do read none of them, so leaving stays linear in their number."""
    config = make_config(tmp_path, backend, parameters={"x": list(range(5))})
    first = make_agents(config, backend, n=1)
    start(first)
    in_threads(first, work_until_done)
    racers = make_agents(config, backend, n=12)
    for study in racers:
        study.find()
        study.ledger.exhausted_seen = False  # each was past the check when the last slot went
        claim_id, number = study.ledger.store.create_trial_numbered(study.ledger.claims_id)
        assert number >= 5
        study.ledger.park_past_budget(claim_id)
    claims = first[0].storage.get_all_trials(first[0].claims_id, deepcopy=False)
    assert sum(c.state == TrialState.WAITING for c in claims) >= 12

    leaving = make_agents(config, backend, n=12)
    for study in leaving:
        study.find()
    reads = [claims_rows_read(study) for study in leaving]
    assert in_threads(leaving, lambda s: (s.claim(), s.is_finished(), s.claim())) == [(None, True, None)] * 12
    assert sum(r[0] for r in reads) == 0, "agents listed the claims parked past the budget"


def test_a_failed_trial_creation_voids_its_claim_and_queues_its_slot(tmp_path, backend):
    """No claim below the budget is parked: the slot's trial is queued for any agent at once."""
    config = make_config(tmp_path, backend, parameters={"x": list(range(6))})
    failing, other = make_agents(config, backend, n=2)
    start([failing, other])
    create = failing.factory.create

    def broken(slot: int):
        failing.factory.create = create
        raise ConnectionError("the storage went away while creating the trial")

    failing.factory.create = broken
    with pytest.raises(ConnectionError):
        failing.claim()
    claims = failing.storage.get_all_trials(failing.claims_id, deepcopy=False)
    assert [c.state for c in claims] == [TrialState.FAIL]
    queued = failing.storage.get_all_trials(failing.study_id, deepcopy=False, states=WAITING)
    assert [t.system_attrs[SLOT] for t in queued] == [claims[0].number]
    works = [w for done in in_threads([failing, other], work_until_done) for w in done]
    assert sorted(w.slot for w in works) == list(range(6))
    assert failing.complete_trials() is not None


# ---- re-queue --------------------------------------------------------------------------------


def test_failed_points_are_requeued_and_taken_exactly_once(tmp_path, backend):
    config = make_config(tmp_path, backend, parameters={"x": list(range(40))}, max_retries=2)
    flaky = set(range(0, 40, 3))  # fail the first attempt only
    doomed = set(range(1, 40, 7))  # fail every attempt

    def outcome(work: Work) -> str:
        x = work.params["x"]
        return "fail" if x in doomed or (x in flaky and work.attempt == 1) else "ok"

    studies = make_agents(config, backend)
    start(studies)
    works = [w for done in in_threads(studies, lambda s: work_until_done(s, outcome)) for w in done]

    runs = Counter((w.params["x"], w.attempt) for w in works)
    assert max(runs.values()) == 1  # no attempt of any point taken twice
    for x in range(40):
        attempts = sorted(a for (point, a) in runs if point == x)
        expected = [1, 2, 3] if x in doomed else [1, 2] if x in flaky else [1]
        assert attempts == expected, x
    trials = studies[0].trials()
    assert sorted(t.params["x"] for t in studies[0].failed_for_good(trials)) == sorted(doomed)
    assert studies[0].unresolved_slots(trials) == []
    assert studies[0].is_complete()


def test_a_rerun_queued_by_another_agent_is_taken_while_fresh_slots_remain(tmp_path, backend):
    """Agents claiming fresh slots look at the queue only once the sweep says it has one (one read
    of the claims study's attributes instead of the main study's unfinished trials); the first
    re-run queued writes that."""
    config = make_config(tmp_path, backend, parameters={"x": list(range(10))}, max_retries=1)
    failing, other = make_agents(config, backend, n=2)
    start([failing, other])
    assert other.claim().attempt == 1  # its first look: no queue yet
    work = failing.claim()
    assert QUEUED not in failing.storage.get_study_system_attrs(failing.claims_id)
    assert failing.fail(work, "failed on purpose", retry_it=True)
    assert QUEUED in failing.storage.get_study_system_attrs(failing.claims_id)
    time.sleep(WAITING_CHECK_SECONDS)
    again = other.claim()
    assert (again.params, again.attempt) == (work.params, 2)
    assert not other.slots_exhausted()


def test_a_queue_an_earlier_version_left_unmarked_is_taken_once_fresh_slots_are_used_up(tmp_path, backend):
    config = make_config(tmp_path, backend, parameters={"x": list(range(3))})
    agent = make_agents(config, backend, n=1)[0]
    start([agent])
    point = {"x": 1}
    template = trial_template(
        TrialState.WAITING, point, agent.source.distributions_for(point), {SLOT: 1, ATTEMPT: 2}
    )
    agent.store.create_trial_numbered(agent.study_id, template)  # queued without the mark
    works = work_until_done(agent)
    first_attempts, rerun = works[:-1], works[-1]
    assert sorted((w.params["x"], w.attempt) for w in first_attempts) == [(0, 1), (1, 1), (2, 1)]
    assert (rerun.params, rerun.attempt) == (point, 2)


# ---- stale reclaim -------------------------------------------------------------------------------


def test_a_silent_agents_trials_are_reclaimed_once_and_requeued_once(tmp_path, backend):
    """Losing its agent (a preempted machine) is no failure of a trial: each point is re-queued
    once, as the same attempt, its last one too, and carries the loss; past LOST_RERUNS losses a
    loss counts as a failed attempt, and the reclaim says so."""
    config = make_config(tmp_path, backend, parameters={"x": list(range(10))}, max_retries=1)
    silent = make_agents(config, backend, n=1)[0]
    start([silent])
    held = [silent.claim() for _ in range(4)]
    # One point already on its last attempt: run again all the same.
    last = silent.claim()
    silent.fail(last, "first attempt failed", retry_it=True)
    retried = silent.claim()
    while retried.attempt != 2:  # the re-queue is looked at every WAITING_CHECK_SECONDS
        silent.complete(retried, 0.0)
        retried = silent.claim()
    held.append(retried)
    for work in held:  # the agent went silent long ago
        silent.store.set_trial_system_attr(work.trial_id, HEARTBEAT, time.time() - 10_000)
    # one point whose agent was lost as often as a loss is re-run as such: this loss is a failure
    silent.store.set_trial_system_attr(held[0].trial_id, LOST, LOST_RERUNS)

    reclaimers = make_agents(config, backend)
    for study in reclaimers:
        study.find()
    reclaimed = [r for found in in_threads(reclaimers, lambda s: s.reclaim_stale(set())) for r in found]

    assert sorted(t._trial_id for t, _, _ in reclaimed) == sorted(w.trial_id for w in held)
    assert all(again for _, _, again in reclaimed)
    assert all("silent" in why for _, why, _ in reclaimed)
    past = {t._trial_id: why for t, why, _ in reclaimed if "past the" in why}
    assert list(past) == [held[0].trial_id] and f"lost {LOST_RERUNS + 1} times" in past[held[0].trial_id]
    waiting = [t for t in silent.trials() if t.state == TrialState.WAITING]
    expected = [(held[0].params["x"], 2, LOST_RERUNS + 1)] + [(w.params["x"], w.attempt, 1) for w in held[1:]]
    queued = sorted((t.params["x"], t.system_attrs[ATTEMPT], t.system_attrs[LOST]) for t in waiting)
    assert queued == sorted(expected)
    assert silent.failed_for_good(silent.trials()) == []
    # taken again, each re-run carries its point's losses and attempt
    rerun = silent.claim()
    assert (rerun.params["x"], rerun.attempt, rerun.losses) in set(expected)


def test_a_dead_agents_trial_whose_run_finished_is_adopted_not_failed(tmp_path, backend):
    """Reclaiming agents offer each stale trial to `adopt` first (it had ended well): it is
    completed once with its result, never failed nor re-queued. Agents adopting the same result
    at once may each settle it (a storage can report another's identical write as this one's
    lost answer): every step of the settling is idempotent."""
    config = make_config(tmp_path, backend, parameters={"x": list(range(4))})
    silent = make_agents(config, backend, n=1)[0]
    start([silent])
    finished, unfinished = silent.claim(), silent.claim()
    for work in (finished, unfinished):
        silent.store.set_trial_system_attr(work.trial_id, HEARTBEAT, time.time() - 10_000)

    reclaimers = make_agents(config, backend)
    for study in reclaimers:
        study.find()
    won: list[int] = []

    def reclaim(study: SweepStudy):
        def adopt(trial, why: str) -> bool:
            if trial.number != finished.number:
                return False  # its run says nothing final: reclaimed as before
            if study.adopt(Work.of(trial), 1.5):
                won.append(trial.number)
            return True

        return study.reclaim_stale(set(), adopt)

    reclaimed = [r for found in in_threads(reclaimers, reclaim) for r in found]

    assert won and set(won) == {finished.number}
    assert [t.number for t, _, _ in reclaimed] == [unfinished.number]
    by_number = {t.number: t for t in silent.trials()}
    assert by_number[finished.number].state == TrialState.COMPLETE
    assert by_number[finished.number].value == 1.5
    assert "fail_reason" not in by_number[finished.number].user_attrs
    assert by_number[unfinished.number].state == TrialState.FAIL
    waiting = [t for t in silent.trials() if t.state == TrialState.WAITING]
    assert [t.params["x"] for t in waiting] == [unfinished.params["x"]]


def test_a_live_agents_trials_are_not_reclaimed(tmp_path, backend):
    config = make_config(tmp_path, backend, parameters={"x": list(range(5))})
    owner = make_agents(config, backend, n=1)[0]
    start([owner])
    work = owner.claim()
    others = make_agents(config, backend, n=4)
    for study in others:
        study.find()
    assert in_threads(others, lambda s: s.reclaim_stale(set())) == [[]] * 4
    owner.heartbeat([work.trial_id])
    assert owner.trials()[0].state == TrialState.RUNNING


def test_a_heartbeat_stops_once_its_trial_is_gone():
    """A closer's token beats from a thread; should its sweep be deleted meanwhile, the thread
    ends instead of warning at every beat until the agent exits."""
    storage = InMemoryStorage()
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], "gone")
    trial_id = storage.create_new_trial(study_id)
    stop = Heartbeat(RetryingStorage(storage), agent_id(), stale_after=0.4).keep_alive(trial_id)
    beating = [t for t in threading.enumerate() if t.name == f"heartbeat-{trial_id}"]
    assert beating and beating[0].is_alive()
    storage.delete_study(study_id)
    beating[0].join(timeout=5)
    assert not beating[0].is_alive() and not stop.is_set()


class AppendThenFail(JournalFileBackend):
    """Optuna's journal file, whose next append raises once its line is written (as a lock
    released by force under the writer does)."""

    fail_next = False

    def append_logs(self, logs):
        super().append_logs(logs)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("Error: did not possess lock")


def test_a_failed_journal_write_leaves_no_error_for_a_later_call(tmp_path):
    """A write whose call failed after its line reached the journal is replayed at once: the
    error it meets there (its trial ended meanwhile) is not raised later by another call from a
    thread with the same id, such as an agent marking a trial it has just taken as its own."""
    path = str(tmp_path / "optuna.log")
    backend = AppendThenFail(path)
    store = RetryingStorage(JournalStorage(backend))
    other = JournalStorage(JournalFileBackend(path))
    study_id = other.create_new_study([StudyDirection.MINIMIZE], "sweep")
    ended, running = other.create_new_trial(study_id), other.create_new_trial(study_id)
    store.get_all_trials(study_id)  # this agent has read both while running
    other.set_trial_state_values(ended, TrialState.COMPLETE, [1.0])  # another agent ends one

    backend.fail_next = True
    with pytest.raises(RuntimeError):
        store.set_trial_system_attr(ended, HEARTBEAT, 1.0)  # a beat, written, then the call fails
    store.set_trial_system_attr(running, AGENT, "me")  # the next write from this thread is its own

    assert store.get_trial(running).system_attrs[AGENT] == "me"
    assert HEARTBEAT not in store.get_trial(ended).system_attrs


def test_completing_a_trial_is_not_refused_for_an_unreplayed_write_of_another_call(tmp_path):
    """A write made outside the retrying wrapper (Optuna's own, a sampler's) that failed after
    its journal line was written leaves it unreplayed; completing a running trial from the same
    thread then meets that line's error first. The completion itself lands, and is not refused."""
    path = str(tmp_path / "optuna.log")
    backend = AppendThenFail(path)
    data = {
        "experiment": "exp", "sweep_name": "s", "command": "true", "parameters": {"x": [1, 2]},
        "optuna_storage": f"journal:///{path}", "mlflow_storage": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "spec": {"direction": "minimize", "metric": "loss"},
    }  # fmt: skip
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "sweep.yaml")
    study = SweepStudy(JournalStorage(backend), config, PointSource(config), agent_id())
    study.create_or_find()
    mine, theirs = study.claim(), study.claim()
    study.launched(mine)  # what its start owed the storage is written: completing writes once
    other = JournalStorage(JournalFileBackend(path))
    other.set_trial_state_values(theirs.trial_id, TrialState.FAIL)  # another agent reclaims it
    backend.fail_next = True
    with pytest.raises(RuntimeError):  # a beat on it from this thread, outside the wrapper
        study.store.raw.set_trial_system_attr(theirs.trial_id, HEARTBEAT, 1.0)
    study.complete(mine, 0.5)
    assert study.store.get_trial(mine.trial_id).state == TrialState.COMPLETE
    with pytest.raises(UpdateFinishedTrialError):  # a trial another agent ended stays refused
        study.complete(theirs, 0.7)


def test_a_trial_whose_agent_quit_at_a_second_ctrl_c_is_rerun_as_the_same_attempt(tmp_path):
    """A second Ctrl-C leaves at once, its trials RUNNING; they say so first. The agent that
    reclaims them re-queues each as interrupted: the same attempt, even with no retries left."""
    data = {
        "experiment": "exp", "sweep_name": "s", "command": "true", "parameters": {"x": [1, 2]},
        "optuna_storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "mlflow_storage": f"sqlite:///{tmp_path / 'mlflow.db'}", "max_retries": 0,
    }  # fmt: skip
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "sweep.yaml")
    quitting, other = (
        SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), agent_id())
        for _ in range(2)
    )
    quitting.create_or_find()
    work = quitting.claim()
    quitting.mark_quit([work.trial_id])
    other.create_or_find()
    ((trial, why, requeued),) = other.reclaim_stale(set())
    assert why.startswith("interrupted") and requeued
    assert other.failed_for_good(other.trials()) == []  # nothing failed
    (again,) = [t for t in other.trials() if t.state == TrialState.WAITING]
    assert int(again.system_attrs[ATTEMPT]) == work.attempt and dict(again.params) == work.params


def test_an_agent_refuses_a_sweep_whose_claims_ledger_was_deleted(tmp_path):
    """optuna-dashboard lists `<sweep>#claims` with a delete button. Deleted after the sweep's
    trials began, a new agent would hand out every point again: it refuses (exit 2), also once
    `status` has made an empty ledger in its place."""
    data = {
        "experiment": "exp", "sweep_name": "s", "command": "true", "parameters": {"x": [1, 2, 3]},
        "optuna_storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "mlflow_storage": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }  # fmt: skip
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "sweep.yaml")

    def agent() -> SweepStudy:
        return SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), agent_id())

    first = agent()
    first.create_or_find()
    first.complete(first.claim(), None)
    optuna.delete_study(study_name="exp/s#claims", storage=config.optuna_storage)
    deleted = "'exp/s#claims' .* was deleted before this agent started"
    with pytest.raises(StorageError, match=deleted) as refused:
        agent().create_or_find()
    assert refused.value.exit_code == 2
    agent().find()  # what `status` does: an empty ledger in its place
    with pytest.raises(StorageError, match="was deleted before this agent started"):
        agent().create_or_find()
    other = config.path.parent / "other.yaml"  # one that has run nothing: nothing can run twice
    other.write_text(yaml.safe_dump({**data, "sweep_name": "t"}))
    config = load_config(other)
    agent().create_or_find()
    optuna.delete_study(study_name="exp/t#claims", storage=config.optuna_storage)
    assert agent().create_or_find() is False  # joined, its ledger made again


@pytest.mark.parametrize("space", ["grid", "sampled"])
def test_a_claim_abandoned_before_its_trial_existed_is_released_and_run_once(tmp_path, backend, space):
    parameters = {"x": list(range(6))} if space == "grid" else {"x": {"low": 0.0, "high": 1.0}}
    algorithm = {} if space == "grid" else {"algorithm": "random", "max_trials": 6}
    config = make_config(tmp_path, backend, parameters=parameters, stale_after=0.2, **algorithm)
    dying = make_agents(config, backend, n=1)[0]
    start([dying])
    claim_id, slot = dying.ledger.claim_slot()  # and then the agent died
    time.sleep(0.5)

    studies = make_agents(config, backend)
    for study in studies:
        study.find()
    released = [s for found in in_threads(studies, lambda s: s.release_stale_claims()) for s in found]
    assert released == [slot]  # voided and queued by exactly one of the agents releasing it
    claims = studies[0].storage.get_all_trials(studies[0].claims_id, deepcopy=False)
    assert [c.state for c in claims if c._trial_id == claim_id] == [TrialState.FAIL]
    queued = [t for t in studies[0].trials() if t.state == TrialState.WAITING]
    assert [t.system_attrs[SLOT] for t in queued] == [slot]
    works = [w for done in in_threads(studies, work_until_done) for w in done]
    assert sorted(w.slot for w in works) == list(range(6))
    assert studies[0].is_complete()


def test_a_rerun_ended_as_lost_between_its_take_and_its_owners_mark_is_left_to_the_next(tmp_path, backend):
    """Until its taker's mark lands, a re-run just taken has no owner: an agent that finds it so
    past stale_after ends it as lost and queues the point again. The taker leaves it, and the
    point runs once more, as the same attempt."""
    config = make_config(tmp_path, backend, parameters={"x": [0]}, stale_after=0.2)
    first, taker, reclaimer = make_agents(config, backend, n=3)
    start([first, taker, reclaimer])
    work = first.claim()
    first.fail(work, "failed on purpose", retry_it=True)  # queued again: attempt 2
    mark = taker.claims._own
    ended = []

    def reclaimed_before_the_mark(trial_id: int) -> bool:
        time.sleep(0.3)
        ended.extend(t._trial_id for t, _, _ in reclaimer.reclaim_stale(set()))
        return mark(trial_id)

    taker.claims._own = reclaimed_before_the_mark
    assert taker.claim() is None
    taker.claims._own = mark
    (lost,) = ended
    assert taker.storage.get_trial(lost).state == TrialState.FAIL
    again = work_until_done(taker)
    assert [(w.slot, w.attempt) for w in again] == [(work.slot, 2)] and again[0].trial_id != lost
    assert taker.is_complete()


def test_a_slot_voided_by_an_agent_that_died_before_queueing_it_is_not_lost(tmp_path, backend):
    config = make_config(tmp_path, backend, parameters={"x": list(range(4))}, stale_after=0.2)
    dying, voiding = make_agents(config, backend, n=2)
    start([dying, voiding])
    _, slot = dying.ledger.claim_slot()  # the claimer died, then
    time.sleep(0.5)
    assert voiding.ledger.release_stale(0.2, voiding.trials) == [slot]  # so did the voider
    in_threads([voiding], work_until_done)

    assert voiding.is_finished()  # nothing active, every claim taken, yet the sweep is not done
    assert voiding.complete_trials() is None
    assert list(voiding.orphaned_slots(voiding.trials())) == [slot]
    voiding.queue_slot(slot)  # as `requeue_lost` does once the void is LOST_REQUEUE_GRACE old
    works = in_threads([voiding], work_until_done)[0]
    assert [w.slot for w in works] == [slot]
    assert voiding.complete_trials() is not None


def test_a_claim_is_settled_at_launch_or_by_others_if_its_agent_died_before(tmp_path, backend):
    """A fresh claim stays RUNNING until its trial is launched; an agent that died in between
    left a trial that owns the slot, so the others settle the claim instead of parking it, and
    the slot's point never runs twice."""
    config = make_config(tmp_path, backend, parameters={"x": list(range(6))}, stale_after=0.2)
    live, dying = make_agents(config, backend, n=2)
    start([live, dying])
    work = live.claim()
    claims = live.storage.get_all_trials(live.claims_id, deepcopy=False)
    assert [c.state for c in claims] == [TrialState.RUNNING]
    live.bind_run(work, "run-a")
    live.launched(work)
    claim = live.storage.get_trial(claims[0]._trial_id)
    assert claim.state == TrialState.COMPLETE and claim.values == [float(work.number)]
    assert live.storage.get_trial(work.trial_id).user_attrs[RUN_ATTR] == "run-a"
    live.launched(work)  # again when the trial ends: a no-op
    live.complete(work, 1.0)

    orphan = dying.claim()  # and then the agent died before launching it
    time.sleep(0.5)
    studies = make_agents(config, backend, n=4)
    for study in studies:
        study.find()
    assert [s for found in in_threads(studies, lambda s: s.release_stale_claims()) for s in found] == []
    claims = live.storage.get_all_trials(live.claims_id, deepcopy=False)
    settled = [c for c in claims if c.number == orphan.slot]
    assert [c.state for c in settled] == [TrialState.COMPLETE]
    in_threads(studies, lambda s: s.reclaim_stale(set()))  # its trial is re-queued, same point
    works = [w for done in in_threads(studies, work_until_done) for w in done]
    assert sorted(w.slot for w in works) == [s for s in range(6) if s != work.slot]
    assert [w.params for w in works if w.slot == orphan.slot] == [orphan.params]


# ---- close election ------------------------------------------------------------------------------


def finished_sweep(tmp_path, backend, **keys) -> tuple:
    config = make_config(tmp_path, backend, parameters={"x": [1, 2, 3]}, **keys)
    studies = make_agents(config, backend)
    start(studies)
    in_threads(studies, work_until_done)
    assert studies[0].is_complete()
    return config, studies


def test_exactly_one_agent_closes_a_sweep(tmp_path, backend):
    config, studies = finished_sweep(tmp_path, backend)
    assert not any(s.close_begun() for s in studies)
    elected = in_threads(studies, lambda s: s.elect_closer())
    assert elected.count(True) == 1
    winner = studies[elected.index(True)]
    assert not any(in_threads(studies, lambda s: s.elect_closer()))  # while it is closing
    assert not winner.is_closed()
    assert all(in_threads(studies, lambda s: s.close_begun()))  # others' descriptions wait
    winner.mark_closed()
    assert all(in_threads(studies, lambda s: s.is_closed()))
    assert all(in_threads(studies, lambda s: s.close_begun()))
    late = make_agents(config, backend, n=4)
    for study in late:
        study.find()
    assert not any(in_threads(late, lambda s: s.elect_closer()))


def test_a_close_that_failed_is_elected_again_exactly_once(tmp_path, backend):
    """Its closer gave its token up (a close action raised): not a close under way for the rest
    of that agent's life, but one that exactly one caller, that agent's too, takes again."""
    _, studies = finished_sweep(tmp_path, backend)
    elected = in_threads(studies, lambda s: s.elect_closer())
    winner = studies[elected.index(True)]
    winner.give_up_close("RuntimeError: the registry refused")
    assert not winner.is_closed() and not any(s.close_begun() for s in studies)
    again = in_threads(studies, lambda s: s.elect_closer())
    assert again.count(True) == 1
    studies[again.index(True)].mark_closed()
    assert all(in_threads(studies, lambda s: s.is_closed()))


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_dead_closer_is_taken_over_by_exactly_one_agent(tmp_path, backend):
    config, studies = finished_sweep(tmp_path, backend)
    dead = f"{socket.gethostname()}:{dead_pid()}:deadbeef"
    doomed = make_agents(config, backend, n=1, agent=dead)[0]
    doomed.find()
    assert doomed.elect_closer()  # ... and its process is gone before it closed

    elected = in_threads(studies, lambda s: s.elect_closer())
    assert elected.count(True) == 1
    assert not any(in_threads(studies, lambda s: s.elect_closer()))
    studies[elected.index(True)].mark_closed()
    assert studies[0].is_closed()


def test_a_silent_closer_is_taken_over_by_exactly_one_agent(tmp_path, backend):
    config, studies = finished_sweep(tmp_path, backend)
    storage = studies[0].store
    close_id = storage.create_new_study([StudyDirection.MINIMIZE], close_study_name(config.identity))
    attrs = {CLOSE_EPOCH: 0, AGENT: "elsewhere:123:cafe", HEARTBEAT: time.time() - 10_000, STALE_AFTER: 300.0}
    storage.create_new_trial(close_id, template_trial=trial_template(TrialState.RUNNING, {}, {}, attrs))
    elected = in_threads(studies, lambda s: s.elect_closer())
    assert elected.count(True) == 1
    studies[elected.index(True)].mark_closed()
    assert all(in_threads(studies, lambda s: s.is_closed()))


def test_a_nominated_token_is_taken_by_exactly_one_agent(tmp_path, backend):
    """Every agent sees the same WAITING token (nominated by an agent that then died) at once."""
    config, studies = finished_sweep(tmp_path, backend)
    storage = studies[0].store
    close_id = storage.create_new_study([StudyDirection.MINIMIZE], close_study_name(config.identity))
    token = trial_template(TrialState.WAITING, {}, {}, {CLOSE_EPOCH: 0})
    storage.create_new_trial(close_id, template_trial=token)
    elected = in_threads(studies, lambda s: s.elect_closer())
    assert elected.count(True) == 1


def test_a_reopened_sweep_elects_exactly_one_new_closer_each_time(tmp_path, backend):
    _, studies = finished_sweep(tmp_path, backend)
    first = in_threads(studies, lambda s: s.elect_closer())
    studies[first.index(True)].mark_closed()
    for epoch in (1, 2, 3):
        assert studies[epoch % len(studies)].reopen() == epoch
        assert not any(in_threads(studies, lambda s: s.is_closed()))
        assert not any(in_threads(studies, lambda s: s.close_begun()))
        again = in_threads(studies, lambda s: s.elect_closer())
        assert again.count(True) == 1
        studies[again.index(True)].mark_closed()
        assert all(in_threads(studies, lambda s: s.is_closed()))


class MissingOnce:
    """A storage whose first read of a study lacks one trial, as a read through Optuna's gRPC
    proxy may when the proxy's `_CachedStorage` adds a trial it has just created to a read that
    ran before an older trial's commit."""

    def __init__(self, storage, hidden_number: int):
        self.storage, self.hidden_number, self.hid = storage, hidden_number, False

    def __getattr__(self, name):
        return getattr(self.storage, name)

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        trials = self.storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        if self.hid:
            return trials
        self.hid = True
        return [t for t in trials if t.number != self.hidden_number]


def test_a_read_lacking_a_lower_nomination_does_not_elect_a_second_closer():
    from mlflow_sweeper.coordination.closing import CloseElection

    storage = InMemoryStorage()
    heartbeat = Heartbeat(RetryingStorage(storage), agent_id(), 300)
    elections = [
        CloseElection(RetryingStorage(MissingOnce(storage, hidden)), "sweep", heartbeat)
        for hidden in (None, 0)
    ]
    study_id = elections[0]._study(create=True)
    for _ in range(2):  # two agents' nominations of epoch 0: #0 is the token
        elections[0]._nominate(study_id, 0)
    assert elections[0].elect()
    assert not elections[1].elect()  # its first read shows #1 as the epoch's first
    assert [t.state for t in storage.get_all_trials(study_id)] == [TrialState.RUNNING, TrialState.WAITING]


def test_mark_closed_without_winning_is_refused(tmp_path, backend):
    _, studies = finished_sweep(tmp_path, backend)
    with pytest.raises(SweeperError, match="elect_closer"):
        studies[0].mark_closed()


# ---- pure parts -----------------------------------------------------------------------------------


def trial(
    number: int, state: TrialState, slot: int | None = None, attempt: int = 1, value=None, first: int = 1
) -> FrozenTrial:
    system_attrs = {ATTEMPT: attempt} if slot is None else {SLOT: slot, ATTEMPT: attempt}
    if first != 1:
        system_attrs[FIRST_ATTEMPT] = first
    return FrozenTrial(
        number=number,
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        datetime_start=None,
        datetime_complete=None,
        params={"x": float(number)},
        distributions={"x": FloatDistribution(0, 1000)},
        user_attrs={},
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=number,
    )


def test_a_point_whose_agent_is_lost_runs_again_as_the_same_attempt_a_few_times():
    """A loss is no failure, up to LOST_RERUNS; past it a loss counts as a failed attempt, so a
    trial that takes its agent down with it does not run forever."""

    def lost(count: int, attempt: int = 1, **attrs) -> FrozenTrial:
        made = trial(0, TrialState.FAIL, slot=0, attempt=attempt)
        made.system_attrs.update({AGENT_LOST: True, **({LOST: count} if count else {}), **attrs})
        return made

    no_retries, one_retry = RetryPolicy(max_retries=0), RetryPolicy(max_retries=1)
    assert [no_retries.rerun(lost(n)) for n in range(LOST_RERUNS)] == [
        Rerun(again=True, losses=n + 1) for n in range(LOST_RERUNS)
    ]
    assert no_retries.rerun(lost(LOST_RERUNS)) is None  # failed for good
    assert one_retry.rerun(lost(LOST_RERUNS)) == Rerun(again=False, losses=LOST_RERUNS + 1)
    assert one_retry.rerun(lost(LOST_RERUNS + 1, attempt=2)) is None
    # an ordinary failure: the next attempt while attempts are left, carrying the losses so far;
    # the agent that ended it cleared a reclaimer's mark (it was slow, not lost)
    failed = lost(2, **{AGENT_LOST: False})
    assert (one_retry.rerun(failed), no_retries.rerun(failed)) == (Rerun(losses=2), None)
    # quit at once (a second Ctrl-C): the same attempt, the losses kept
    quit_at_once = lost(LOST_RERUNS, **{QUIT: True})
    assert no_retries.rerun(quit_at_once) == Rerun(again=True, losses=LOST_RERUNS)


def test_a_lost_agents_trials_are_no_failure_for_fail_fast_or_status():
    from mlflow_sweeper.coordination.fail_fast import fail_fast_reason

    lost = [trial(n, TrialState.FAIL, slot=n) for n in range(3)]
    for made in lost:
        made.system_attrs[AGENT_LOST] = True
    waiting = [trial(n + 3, TrialState.WAITING, slot=n) for n in range(3)]
    assert fail_fast_reason([*lost, *waiting], 3) is None
    assert tallies.failed_to_retry([*lost, *waiting]) == 0
    for made in lost:  # had each failed by itself, the first three all failed
        made.system_attrs[AGENT_LOST] = False
    assert fail_fast_reason([*lost, *waiting], 3) is not None
    assert tallies.failed_to_retry([*lost, *waiting]) == 3


def test_retry_policy_counts_the_first_run_as_attempt_one():
    policy = RetryPolicy(max_retries=2)
    assert [policy.may_run(a) for a in (1, 2, 3, 4)] == [True, True, True, False]
    assert [policy.may_retry(a) for a in (1, 2, 3)] == [True, True, False]
    assert not RetryPolicy(0).may_retry(1)


def test_a_fresh_set_of_attempts_numbered_on_gets_the_whole_retry_budget():
    """A point failed for good after attempts 1-3 and queued again (fail_fast, --retry-failed):
    its attempts go on from 4, and 4, 5 and 6 may run."""
    policy = RetryPolicy(max_retries=2)
    assert [policy.may_run(a, first=4) for a in (4, 5, 6, 7)] == [True, True, True, False]
    assert [policy.may_retry_trial(trial(0, TrialState.FAIL, 0, attempt=a, first=4)) for a in (4, 5, 6)] == [
        True,
        True,
        False,
    ]


def test_unresolved_slots_are_failed_points_still_owed_a_run():
    policy = RetryPolicy(max_retries=1)
    trials = [
        trial(0, TrialState.FAIL, slot=0),  # lost its re-queue: owed
        trial(1, TrialState.FAIL, slot=1),
        trial(2, TrialState.WAITING, slot=1, attempt=2),  # re-queued: not owed
        trial(3, TrialState.FAIL, slot=2, attempt=2),  # last attempt: not owed
        trial(4, TrialState.FAIL, slot=3),
        trial(5, TrialState.COMPLETE, slot=3, attempt=2, value=1.0),
        trial(6, TrialState.FAIL),  # a failed sample owns no slot
        trial(7, TrialState.FAIL, slot=4, attempt=3, first=3),  # a fresh set's first attempt: owed
    ]
    assert [t.number for t in tallies.unresolved_slots(trials, policy)] == [0, 7]
    assert [t.number for t in tallies.unresolved_slots(trials, RetryPolicy(max_retries=0))] == []


def test_failed_for_good_is_the_last_attempt_of_points_that_never_completed():
    trials = [
        trial(0, TrialState.FAIL, slot=0),
        trial(4, TrialState.FAIL, slot=0, attempt=2),
        trial(1, TrialState.FAIL, slot=1),
        trial(2, TrialState.RUNNING, slot=1, attempt=2),
        trial(3, TrialState.FAIL, slot=2),
        trial(5, TrialState.COMPLETE, slot=2, attempt=2, value=0.0),
    ]
    assert [t.number for t in tallies.failed_for_good(trials)] == [4]


def test_best_follows_the_direction_and_the_lower_number_among_equals():
    trials = [
        trial(0, TrialState.COMPLETE, slot=0, value=3.0),
        trial(1, TrialState.COMPLETE, slot=1, value=1.0),
        trial(2, TrialState.COMPLETE, slot=2, value=1.0),
        trial(3, TrialState.FAIL, slot=3),
        trial(4, TrialState.COMPLETE, slot=4, value=None),
    ]
    assert tallies.best(trials, StudyDirection.MINIMIZE).number == 1
    assert tallies.best(trials, StudyDirection.MAXIMIZE).number == 0
    assert tallies.best(trials[3:], StudyDirection.MINIMIZE) is None


def test_progress_counts_states_and_failures_for_good():
    trials = [
        trial(0, TrialState.COMPLETE, slot=0, value=1.0),
        trial(1, TrialState.RUNNING, slot=1),
        trial(2, TrialState.WAITING, slot=2, attempt=2),
        trial(3, TrialState.FAIL, slot=2),
        trial(4, TrialState.FAIL, slot=3, attempt=2),
    ]
    progress = tallies.progress(trials, budget=6, best_trial=trials[0])
    assert (progress.complete, progress.running, progress.waiting, progress.failed_for_good) == (1, 1, 1, 1)
    assert progress.remaining == 6 - 1 - 1 - 1


# ---- deleting ------------------------------------------------------------------------------------


def test_delete_removes_every_study_of_a_closed_sweep(tmp_path, backend):
    if backend.kind == "memory":
        pytest.skip("`delete` opens the storage from its URL")
    from mlflow_sweeper.admin import delete_sweep

    config, studies = finished_sweep(tmp_path, backend)
    assert studies[0].elect_closer()
    studies[0].mark_closed()
    assert delete_sweep(config).study_deleted
    names = {s.study_name for s in backend.open().get_all_studies()}
    assert not names & set(study_names(config.identity))  # other tests' sweeps may share the storage


# ---- starting over a sweep that learned nothing ------------------------------------------------


def _failed_sweep(tmp_path: Path, backend: Backend, state: TrialState = TrialState.FAIL):
    """A sweep (objective 'loss') whose one trial ended in `state`, its run recorded."""
    (first,) = make_agents(make_config(tmp_path, backend), backend, 1)
    first.create_or_find({"first": "record"})
    first.identity.parent.record("parent-run")
    work = first.claim()
    assert work is not None
    first.bind_run(work, "run-of-attempt-0")
    first.launched(work)
    if state == TrialState.COMPLETE:
        first.complete(work, 1.0)
    else:
        first.fail(work, "the run did not log the metric 'loss'", retry_it=True)
    return first


def test_a_changed_objective_starts_a_sweep_that_learned_nothing_over_exactly_once(tmp_path, backend):
    _failed_sweep(tmp_path, backend)
    fixed = make_config(tmp_path, backend, spec={"direction": "minimize", "metric": "val_loss"})
    agents = make_agents(fixed, backend, 4)
    for agent in agents:
        assert agent.find()
    results = in_threads(agents, lambda agent: agent.check_drift())
    started = [r for r in results if r is not None]
    assert len(started) == 1 and started[0].run_ids == ["run-of-attempt-0"]
    assert all(agent.study_id == agents[0].study_id for agent in agents)
    study = agents[0]
    assert study.parent_run_id() == "parent-run"
    assert study.store.get_study_user_attrs(study.study_id)["first"] == "record"
    assert study.trials() == []
    names = {s.study_name for s in study.store.get_all_studies()}
    assert not any("#starting-over-" in name for name in names)
    assert study.check_drift() is None  # the new config is now the sweep's
    assert study.claim() is not None  # the budget starts from its first slot again


def test_a_changed_objective_is_refused_once_a_trial_completed(tmp_path, backend):
    _failed_sweep(tmp_path, backend, TrialState.COMPLETE)
    changed = make_config(tmp_path, backend, spec={"direction": "maximize", "metric": "loss"})
    (agent,) = make_agents(changed, backend, 1)
    assert agent.find()
    with pytest.raises(SweeperError, match="already exists"):
        agent.check_drift()
    assert len(agent.trials()) == 1


def test_a_changed_config_refused_while_a_first_trial_runs_says_it_may_start_over_later(tmp_path, backend):
    (first,) = make_agents(make_config(tmp_path, backend), backend, 1)
    first.create_or_find()
    first.identity.parent.record("parent-run")
    assert first.claim() is not None  # running: nothing learned yet, but not nothing at all
    changed = make_config(tmp_path, backend, spec={"direction": "maximize", "metric": "loss"})
    (agent,) = make_agents(changed, backend, 1)
    assert agent.find()
    with pytest.raises(SweeperError, match="should the running ones end without one, the sweep starts over"):
        agent.check_drift()


def test_delete_removes_a_start_over_lock_left_by_a_dead_agent(tmp_path):
    from mlflow_sweeper.admin import delete_sweep
    from mlflow_sweeper.coordination.names import starting_over_name

    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'optuna.db'}")
    study = _failed_sweep(tmp_path, backend)
    lock = starting_over_name(study.config.identity, 1)
    study.store.create_new_study([StudyDirection.MINIMIZE], lock)  # its agent died holding it
    delete_sweep(study.config)
    names = {s.study_name for s in open_optuna_storage(backend.url).get_all_studies()}
    assert names == set()
