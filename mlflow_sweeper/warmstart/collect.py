"""Finding the earlier results of each `warm_start` source, reading only: a sweep's completed
trials (through their MLflow runs) or the runs a filter string matches. A source that does not
exist is a config error, raised before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from optuna.trial import TrialState

from ..config import SweepConfig
from ..config.warm_start import RunsSource, SweepSource
from ..constraints import judge, trial_attrs
from ..errors import ConfigError
from ..triage import is_nonfinite
from .fit import fitting_point
from .reading import sweep_trials

PAGE = 1000
RUN_ATTR = "mlflow_run_id"


@dataclass(frozen=True)
class EarlierResult:
    """One finished MLflow run: its params as logged and its latest metrics."""

    run_id: str
    source: str
    params: dict[str, str]
    metrics: dict[str, float]
    experiment_id: str | None = None  # where the run lives (its UI page is under it)
    # A run of an MLflow Project: MLflow logs every parameter of its entry point, defaults too, so
    # a value of a parameter whose condition is off may be one it was never passed. Elsewhere,
    # such a value was passed: the run is not of the point that leaves the parameter out.
    logs_defaults: bool = True


@dataclass(frozen=True)
class WarmTrial:
    """An earlier result that fits: what enters the study."""

    run_id: str
    source: str
    params: dict
    values: list[float] | None  # None without an objective: the run ended well, nothing to score
    constraints: dict[str, float] = field(default_factory=dict)
    experiment_id: str | None = None  # the run's experiment, for links to its page


@dataclass
class WarmStart:
    trials: list[WarmTrial]
    misfits: int  # earlier results that did not fit the space (or lacked the objective's metrics)

    def summary(self) -> str:
        return (
            f"warm start: {len(self.trials)} earlier result(s) fit this sweep and enter it, "
            f"{self.misfits} did not fit"
        )


def collect(config: SweepConfig, client) -> list[EarlierResult]:
    """Every source's finished runs, each run once. Raises ConfigError naming the source."""
    seen: dict[str, EarlierResult] = {}
    for index, source in enumerate(config.warm_start):
        key = f"warm_start[{index}]"
        if isinstance(source, SweepSource):
            found = _sweep_runs(config, client, source, key)
        else:
            found = _filtered_runs(config, client, source, key)
        for result in found:
            seen.setdefault(result.run_id, result)
    return list(seen.values())


def _fail(config: SweepConfig, key: str, message: str) -> ConfigError:
    return ConfigError(str(config.path), key, message)


def _experiment_id(config: SweepConfig, client, name: str, key: str, sweep: SweepSource | None = None) -> str:
    """Experiment `name`'s id; a config error when it is missing, saying where the agents of a
    source `sweep` recorded its runs when that is another store."""
    experiment = client.get_experiment_by_name(name) if client is not None else None
    if experiment is None:
        elsewhere = ""
        if sweep is not None and client is not None:
            elsewhere = recorded_elsewhere(config, sweep, client.tracking_uri)
        raise _fail(config, key, f"no experiment {name!r} in the MLflow storage{elsewhere}")
    return experiment.experiment_id


def _sweep_runs(config: SweepConfig, client, source: SweepSource, key: str) -> list[EarlierResult]:
    trials = sweep_trials(config.optuna_storage, source.sweep)
    if trials is None:
        raise _fail(config, f"{key}.sweep", f"no sweep {source.sweep!r} in the Optuna storage")
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    wanted = {t.user_attrs[RUN_ATTR] for t in done if t.user_attrs.get(RUN_ATTR)}
    experiment = source.sweep.rsplit("/", 1)[0]
    experiment_id = _experiment_id(config, client, experiment, f"{key}.sweep", source)
    from ..record.lookup import runs_of_sweep  # MLflow's side: kept off the module's import

    runs = [run for run in runs_of_sweep(client, [experiment_id], source.sweep) if run.info.run_id in wanted]
    found = {run.info.run_id for run in runs}
    runs += _inherited(client, wanted - found)
    return [_result(run, source.label) for run in runs]


def recorded_elsewhere(config: SweepConfig, source: SweepSource, tracking_uri: str) -> str:
    """Where a source sweep's agents recorded its runs, when that is not `tracking_uri` (said
    after a refusal to find them here), else ''."""
    from ..tracking_store import TRACKING_URI_ATTR, fit_to_record
    from .reading import sweep_user_attrs

    recorded = sweep_user_attrs(config.optuna_storage, source.sweep).get(TRACKING_URI_ATTR)
    here = fit_to_record(tracking_uri) or tracking_uri
    if not recorded or recorded.rstrip("/") == here.rstrip("/"):
        return ""
    return f": its agents recorded its runs in {recorded}; set 'mlflow_storage' to that store"


def _inherited(client, run_ids: set[str]) -> list:
    """The runs of the source's own warm-started results: they belong to the sweeps or runs that
    source started from, so only their ids lead to them. A run deleted since is left out, as the
    source's own deleted runs are."""
    found = []
    for run_id in sorted(run_ids):
        try:
            run = client.get_run(run_id)
        except Exception:  # noqa: BLE001 - MLflow's word for a run that is gone for good
            continue
        if run.info.lifecycle_stage == "active":
            found.append(run)
    return found


def _filtered_runs(config: SweepConfig, client, source: RunsSource, key: str) -> list[EarlierResult]:
    if source.experiment is None and _missing(client, config.experiment):
        _search_or_refuse(config, client, None, source.runs, key)  # the filter checked all the same
        return []  # the sweep's own experiment is made with its parent: no earlier runs there yet
    at = f"{key}.experiment" if source.experiment else key
    experiment_id = _experiment_id(config, client, source.experiment or config.experiment, at)
    runs = _search_or_refuse(config, client, experiment_id, source.runs, key)
    own = ("parent", "agent")
    return [
        _result(run, source.label)
        for run in runs
        if run.info.status == "FINISHED" and run.data.tags.get("sweeper.role") not in own
    ]


def _search(client, experiment_id: str, filter_string: str) -> list:
    from ..record.lookup import all_pages

    return all_pages(
        lambda token: client.search_runs([experiment_id], filter_string, max_results=PAGE, page_token=token)
    )


def _search_or_refuse(
    config: SweepConfig, client, experiment_id: str | None, filter_string: str, key: str
) -> list:
    """The runs the filter finds, or a config error with MLflow's word on a bad filter string.
    `experiment_id` None: in no experiment (the store checks the filter, and finds nothing)."""
    try:
        if experiment_id is None:
            return list(client.search_runs([], filter_string, max_results=1))
        return _search(client, experiment_id, filter_string)
    except Exception as exc:  # noqa: BLE001 - MLflow's word on a bad filter string
        raise _fail(config, f"{key}.runs", f"MLflow refused the filter string: {exc}") from None


def _missing(client, experiment: str) -> bool:
    return client is not None and client.get_experiment_by_name(experiment) is None


def _result(run, source: str) -> EarlierResult:
    from .. import compat

    of_project = compat.mlflow_tags().MLFLOW_PROJECT_ENTRY_POINT in run.data.tags
    params, metrics = dict(run.data.params), dict(run.data.metrics)
    return EarlierResult(run.info.run_id, source, params, metrics, run.info.experiment_id, of_project)


def prepare(config: SweepConfig, results: list[EarlierResult], on_grid: bool) -> WarmStart:
    """The results that fit the space and logged every objective metric, with their values and
    constraint values; the count of the rest."""
    names = config.objective.names
    fitted: list[WarmTrial] = []
    misfits = 0
    for result in results:
        point = fitting_point(config.space, result.params, on_grid, inactive_logged=result.logs_defaults)
        values = [result.metrics.get(name) for name in names]  # none without an objective
        if point is None or any(v is None or is_nonfinite(v) for v in values):  # an infeasible result
            misfits += 1
            continue
        constraints = config.objective.constraints
        judgement = judge(constraints, result.metrics) if constraints else None
        if judgement is not None and judgement.missing:
            misfits += 1
            continue
        attrs = trial_attrs(judgement) if judgement is not None else {}
        scores = [float(v) for v in values] if names else None  # type: ignore[arg-type]
        fitted.append(WarmTrial(result.run_id, result.source, point, scores, attrs, result.experiment_id))
    return WarmStart(fitted, misfits)
