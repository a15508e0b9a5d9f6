"""Opening a sweep: the one way the agent and `status`, `delete` and `report` reach a sweep.

In order, so that nothing is written too early: the Optuna storage answers; the sweep's MLflow
store is settled (the config's, else MLFLOW_TRACKING_URI, else the one the sweep's first agent
recorded in its study, else MLflow's default), answers and lets the agent write the sweep's
experiment; the study is found, or created by an
agent (with its store recorded); drift is checked once; the parent run is attached.

`status`, `delete` and `report` open in find-only mode: nothing is created, not even a storage's
file (a file-backed storage that does not exist holds no sweep), and the MLflow side is opened
only when asked for.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from .config import SweepConfig
from .coordination import RUN_ATTR, SweepStudy, agent_id
from .coordination.parent_election import parent_not_here
from .coordination.restart import StartOverHooks
from .coordination.tallies import best_so_far_step
from .errors import ConfigError, StorageError
from .search.algorithms import PointSource
from .storages import exists as storage_exists
from .storages import open_mlflow_tracking, open_optuna_storage, probe_mlflow_storage, probe_optuna_storage
from .storages.access import check_write_access
from .storages.pools import AGENT_APPLICATION, Pool, agent_pools
from .tracking_store import (
    agreed_tracking_uri,
    explicit_tracking_uri,
    first_records,
    record_tracking_uri,
    store_not_recorded,
    sweep_tracking_uri,
)
from .warmstart.collect import WarmStart
from .warmstart.entering import enter as enter_warm_start
from .warmstart.entering import gather as gather_warm_start
from .warmstart.reading import sweep_names

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # MLflow is imported only once its side is opened: `status` may never need it
    from mlflow.entities import Run

    from .record import Recorder


@dataclass
class OpenSweep:
    """A sweep as opened: its study (None when find-only found none), its MLflow store, its parent.

    An agent's is complete (`recorder` and `parent_id` set); find-only opens the MLflow side on
    the first use of `recorder` (None when that store holds nothing), and never creates it."""

    config: SweepConfig
    study: SweepStudy | None
    tracking_uri: str
    parent_id: str | None = None
    created: bool = False  # this agent created the study
    warm_summary: str | None = None  # how many earlier results this agent entered (warm start)
    started_over: str | None = None  # what the agent says when the sweep started over (else None)
    config_stored: str | None = None  # what the agent says when the parent now holds this config
    _recorder: Recorder | None = field(default=None, repr=False)
    _recorder_opened: bool = field(default=False, repr=False)

    def runs_elsewhere(self) -> str | None:
        """What to say where this command found none of the sweep's runs: when the store the user
        named is not the one its agents recorded, where they are. Read from the study: asked
        before the study is deleted."""
        return store_not_recorded(self.config, self.study)

    def warn_runs_elsewhere(self) -> None:
        note = self.runs_elsewhere()
        if note is not None:
            log.warning("%s", note)

    @property
    def recorder(self) -> Recorder | None:
        if not self._recorder_opened:
            self._recorder = _existing_recorder(self.config, self.tracking_uri)
            self._recorder_opened = True
        return self._recorder


def open_sweep(
    config: SweepConfig, *, create: bool = True, agent: str | None = None, n_jobs: int = 1
) -> OpenSweep:
    """The sweep of `config`, created when `create` (an agent: `agent` names it, `n_jobs` sizes
    its connection pools), else only found (`status`, `delete`, `report`)."""
    if not create:
        return _find_only(config)
    _probe_optuna(config)  # both storages answer before either is written
    optuna_pool, mlflow_pool = agent_pools(n_jobs)
    opener = _StudyOpener(config, agent or agent_id(), optuna_pool)
    study, found, uri, gathered = _settle_store(config, opener)
    created, started_over = False, None
    warm = _WarmStart(config, uri, study, gathered)
    if not found:  # whoever creates the study records its store with it, before the parent run
        created = study.create_or_find(first_records(uri))
    uri = _agreed_store(config, study, created, uri)
    from .record import Recorder

    if not created and not storage_exists(uri):  # before the store's file is made
        _check_recorded_parent(study, None)
    from .launch.dispatch import launcher_class

    reserved = launcher_class(config).store_connections_per_trial * max(1, n_jobs)
    client = open_mlflow_tracking(uri, mlflow_pool, AGENT_APPLICATION, reserved)
    recorded = None  # the parent run as this agent found it
    if not created:  # before the experiment is made, and before a start over writes to Optuna
        recorded = _check_recorded_parent(study, client)
        started_over = study.check_drift(warm)  # once, before anything is written for this config
    recorder = Recorder(client, config)
    parent_id = _attach_parent(study, recorder, warm, created)
    if warm.summary is not None:  # this agent entered the earlier results
        _record_warm_best(study, recorder, parent_id)
    study.hold_warm_slots()
    record_tracking_uri(study, uri)
    opened = OpenSweep(
        config,
        study,
        client.tracking_uri,
        parent_id,
        created,
        warm_summary=warm.summary,
        _recorder=recorder,
        _recorder_opened=True,
    )
    if started_over is not None:
        recorder.delete_runs(started_over.run_ids)
        recorder.parent.started_over(parent_id, started_over.generation)
        opened.started_over = started_over.message(config.identity)
    elif recorded is not None and recorded.info.run_id == parent_id:
        opened.config_stored = _keep_config_current(recorder, parent_id, recorded.data.tags)
    return opened


def _keep_config_current(recorder: Recorder, parent_id: str, tags: dict[str, str]) -> str | None:
    """A sweep resumed with a config changed where it may change: the parent stores the new one.
    What the agent says of it; None when nothing changed."""
    if not recorder.parent.keep_config_current(parent_id, tags):
        return None
    return (
        f"{recorder.config.identity}: the config changed where it may on resume: the parent run's "
        "sweep/ artifact now holds this one (the parent's params keep the values the sweep started with)"
    )


def registered_model(config: SweepConfig) -> str | None:
    """The model the sweep's best trial goes to (`register.model_name`), if any."""
    return config.register.model_name if config.register is not None else None


def _agreed_store(config: SweepConfig, study: SweepStudy, created: bool, uri: str) -> str:
    """The sweep's MLflow store. With none named, agents started together from different
    directories agree on one: the one the study's creator recorded with it (waited for when the
    sweep was just created), checked as this agent's own was."""
    if explicit_tracking_uri(config) is not None:
        return uri
    agreed = agreed_tracking_uri(study, created, uri)
    if agreed != uri:
        _probe_mlflow(config, agreed)
        check_write_access(agreed, config.experiment, registered_model(config))
    return agreed


def _check_recorded_parent(study: SweepStudy, client) -> Run | None:
    """Refuse (exit 2) a found sweep whose recorded parent run is not in this MLflow store
    (`client`; None: a store that cannot hold it), by a read, before anything is written.
    Returns the parent run read (None when none is recorded yet)."""
    from .record.parent import found_run

    parent = study.parent_run_id()
    if parent is None:
        return None
    run = found_run(client, parent) if client is not None else None
    if run is None:
        raise parent_not_here(study.config, parent)
    return run


def _attach_parent(study: SweepStudy, recorder: Recorder, warm: _WarmStart, created: bool) -> str:
    """The sweep's parent run id. The creator enters the earlier results, then records the parent
    that the other agents await; they wait for it, and take both over if the creator died first."""
    if created:
        warm.enter()
        return study.identity.parent.record(recorder.parent.create())

    def take_over() -> str:
        warm.enter()
        return recorder.parent.create()

    return study.identity.parent.wait_for(take_over, recorder.parent.state)


def _record_warm_best(study: SweepStudy, recorder: Recorder, parent_id: str) -> None:
    """The best earlier result is the sweep's best until a trial beats it: on the parent from the
    start (its tag and the first point of its best-so-far curve), not only at the close."""
    best = study.best_trial()
    if best is None or not best.user_attrs.get(RUN_ATTR):
        return
    step = best_so_far_step(study.trials(), best.number, study.direction) or 0
    recorder.parent.record_best(parent_id, best.user_attrs[RUN_ATTR], best.value, step=step)


class _WarmStart(StartOverHooks):
    """The sweep's `warm_start` results: gathered before anything is written when this agent may
    create the study (or start it over), entered by whoever records the parent run (the creator,
    or the agent taking over from a creator that died first; entering skips what is already in
    the study), or by the agent that starts the sweep over, on the new study."""

    def __init__(self, config: SweepConfig, uri: str, study: SweepStudy, gathered: WarmStart | None):
        self.config, self.uri, self.study, self.gathered = config, uri, study, gathered
        self.summary: str | None = None

    def before(self) -> None:
        if self.config.warm_start and self.gathered is None:
            self.gathered = gather_warm_start(self.config, self.uri, self.study.source)

    def recreated(self, study_id: int) -> None:
        self.enter(study_id)

    def enter(self, study_id: int | None = None) -> None:
        if not self.config.warm_start:
            return
        study = self.study
        self.before()
        gathered = self.gathered
        enter_warm_start(
            study.store, study.study_id if study_id is None else study_id, study.source, gathered
        )
        self.summary = f"{self.config.identity}: {gathered.summary()}"


class _StudyOpener:
    """Opens the sweep's Optuna storage once, at the first call, and finds the study in it; reads
    the earlier results a new study starts from."""

    def __init__(self, config: SweepConfig, agent: str, pool: Pool | None):
        self.config, self.agent, self.pool = config, agent, pool
        self.study: SweepStudy | None = None
        self.found = False

    @cached_property
    def source(self) -> PointSource:
        """The sweep's algorithm on its config: built once, for the study and the warm start."""
        return PointSource(self.config)

    def __call__(self) -> tuple[SweepStudy, bool]:
        if self.study is None:
            url = self.config.optuna_storage
            storage = (
                open_optuna_storage(url, self.pool.size, self.pool.overflow)
                if self.pool is not None
                else open_optuna_storage(url)
            )
            self.study = SweepStudy(storage, self.config, self.source, self.agent)
            self.found = self.study.find()
        return self.study, self.found

    def earlier_results(self, uri: str) -> WarmStart | None:
        """Read before the study is opened, which may create the storage: a missing source (exit
        2) writes nothing. A sweep that exists took its earlier results in when it was created:
        a source deleted since is not needed to resume it."""
        if not self.config.warm_start:
            return None
        try:
            return gather_warm_start(self.config, uri, self.source)
        except ConfigError:
            if self.config.identity in sweep_names(self.config.optuna_storage):
                return None
            raise


def _settle_store(
    config: SweepConfig, open_study: _StudyOpener
) -> tuple[SweepStudy, bool, str, WarmStart | None]:
    """(the study, found, the sweep's MLflow store, the earlier results it starts from), the
    store answering. With no store named, a storage that exists is read first, for the store a
    found sweep recorded; otherwise the study is opened only once the MLflow store has answered
    and let this agent write the sweep's experiment (opening a database storage creates its
    tables), and the earlier results in the store were read (kept only for a study not found)."""
    study, found = None, False
    if explicit_tracking_uri(config) is None and storage_exists(config.optuna_storage):
        study, found = open_study()
    uri = sweep_tracking_uri(config, study if found else None)
    _probe_mlflow(config, uri)
    check_write_access(uri, config.experiment, registered_model(config))
    gathered = None if found else open_study.earlier_results(uri)
    study, found = open_study()
    return study, found, uri, None if found else gathered


def check_before_running(config: SweepConfig) -> None:
    """What an agent given several sweeps checks of each before it runs the first, writing
    nothing: both storages answer, and a sweep that exists is not refused, for a changed config
    or for a parent run its MLflow store does not hold. A later sweep's exit 2 then comes before
    the earlier sweeps run, not after."""
    _probe_optuna(config)
    opened = _find_only(config)
    _probe_mlflow(config, opened.tracking_uri)
    if opened.study is None:
        return
    opened.study.identity.check_not_refused()
    recorder = opened.recorder  # None: a store that does not exist, or holds no such experiment
    _check_recorded_parent(opened.study, recorder.client if recorder is not None else None)


def _find_only(config: SweepConfig) -> OpenSweep:
    """Find the sweep, creating nothing: a missing storage file holds no sweep."""
    study = None
    if storage_exists(config.optuna_storage):
        _probe_optuna(config)
        study, found = _StudyOpener(config, agent_id(), None)()
        study = study if found else None
    uri = sweep_tracking_uri(config, study)
    parent_id = study.parent_run_id() if study is not None else None
    return OpenSweep(config, study, uri, parent_id)


def _existing_recorder(config: SweepConfig, uri: str) -> Recorder | None:
    """The sweep's MLflow side in `uri`, never created: None when that store holds nothing."""
    if not storage_exists(uri):
        return None
    _probe_mlflow(config, uri)
    from .record import Recorder

    return Recorder.existing(open_mlflow_tracking(uri), config)


def _probe_optuna(config: SweepConfig) -> None:
    """The sweep's Optuna storage answers; if not, the message names the config (and its key,
    where the config gives it; else the default in its output_dir)."""
    given = isinstance(config.written, dict) and "optuna_storage" in config.written
    with _named_by(f"{config.path}: optuna_storage" if given else str(config.path)):
        probe_optuna_storage(config.optuna_storage)


def _probe_mlflow(config: SweepConfig, uri: str) -> None:
    """The sweep's MLflow store answers; if not, the message says where it was named (the config's
    key, or the environment's variable; nothing for a store recorded or MLflow's default)."""
    named = f"{config.path}: mlflow_storage" if config.mlflow_storage else None
    if named is None and explicit_tracking_uri(config) is not None:
        named = "MLFLOW_TRACKING_URI"
    with _named_by(named):
        probe_mlflow_storage(uri)


@contextlib.contextmanager
def _named_by(named: str | None) -> Iterator[None]:
    """A storage that does not answer is said with what named it."""
    try:
        yield
    except StorageError as exc:
        if named is None:
            raise
        raise StorageError(f"{named}: {exc}") from None
