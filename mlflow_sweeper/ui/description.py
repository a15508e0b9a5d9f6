"""The parent run's description (the markdown the MLflow UI shows first on a run's page), made
from what is known of a sweep at one moment. Pure: the same view gives the same text, so it is
tested in-process and written by whoever holds a view (the running agents, the closer)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

from ..constraints import NONE_FEASIBLE, feasible_only, is_feasible
from ..coordination.identity import directions_of
from ..coordination.names import RUN_ATTR, WARM_EXPERIMENT
from ..coordination.tallies import (
    failed_for_good,
    failed_to_retry,
    in_budget,
    infeasible,
    pareto_front,
    warm_held,
    warm_started,
)
from .links import artifact_route, run_route, runs_route

if TYPE_CHECKING:
    from ..config import SweepConfig

DESCRIPTION_TAG = "mlflow.note.content"
TOP = 10  # trials in the table
REPORT_PAGE = "report/report.html"


@dataclass(frozen=True)
class SweepView:
    """What the description says: the sweep's trials and what else is known of it now."""

    config: SweepConfig
    trials: list[FrozenTrial]
    experiment_id: str
    parent_id: str
    state: str = "running"  # running | complete | stopped | interrupted
    stopped: str | None = None  # why the sweep stopped early (target, fail_fast)
    budget: int | None = None
    failed_for_good: int | None = None  # None: counted from the trials (attempts that failed)
    importances: dict[str, float] = field(default_factory=dict)
    report_path: str | None = None  # the report's page among the parent's artifacts, once logged
    registered: str | None = None  # "name/version" of the best trial's model in the registry
    warnings: tuple[str, ...] = ()


def ranked(config: SweepConfig, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The feasible complete trials of a single objective, best first."""
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.values and _number(t.values[0]) and is_feasible(t)
    ]
    return sorted(done, key=lambda t: t.values[0], reverse=config.objective.direction == "maximize")


def front(config: SweepConfig, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Several objectives: the feasible trials no other feasible trial beats on every metric."""
    return pareto_front(feasible_only(trials), directions_of(config))


def describe(view: SweepView) -> str:
    objective = view.config.objective
    parts = [_headline(view), *_warnings(view)]
    if objective.multi:
        parts.append(_front_section(view))
    elif objective.metric is not None:
        parts.append(_best_section(view))
    if view.importances:
        parts.append(_importances(view.importances))
    parts.append(_where(view))
    return "\n\n".join(part for part in parts if part) + "\n"


# ---- sections ---------------------------------------------------------------------------------------


def _headline(view: SweepView) -> str:
    budgeted = [t for t in view.trials if in_budget(t, view.budget or 0)]  # counted as `status` counts
    states = [t.state for t in budgeted]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    running = states.count(TrialState.RUNNING)
    failed = states.count(TrialState.FAIL) if view.failed_for_good is None else view.failed_for_good
    ended = complete + pruned + failed
    of = f"/{view.budget}" if view.budget else ""
    state = {
        "running": "running",
        "complete": "complete",
        "stopped": "stopped early",
        "interrupted": "interrupted (run the same command again to resume)",
    }.get(view.state, view.state)
    complete_words = f"{complete} complete"
    if view.config.objective.constraints:  # results all, but only the feasible ones can be best
        violating = sum(1 for t in budgeted if t.state == TrialState.COMPLETE and not is_feasible(t))
        complete_words += f" ({violating} not feasible: outside spec.constraints)" if violating else ""
    failed_words = f"{failed} failed"
    unfit = len(infeasible(failed_for_good(budgeted)))  # results too: never retried
    failed_words += f" ({unfit} infeasible)" if unfit else ""
    counts = f"{complete_words}, {pruned} pruned, {failed_words}"
    warm = warm_held(view.trials, view.budget or 0)  # a grid point's result, say
    if warm:
        counts += f"; {warm} of them earlier results (warm start), not run here"
    beside = warm_started(view.trials) - warm
    if beside:
        counts += f"; and {beside} earlier result{'s' if beside > 1 else ''} (warm start) beside the budget"
    to_retry = failed_to_retry(view.trials)  # not ended: each point runs again (on resume, if stopped)
    if to_retry:
        counts += f"; {to_retry} more point{'s' if to_retry > 1 else ''} failed and will be retried"
    # The run page shows a description's first lines only, until "Show more": the state, the
    # counts and the best come first, compact.
    lines = [
        f"**Sweep `{view.config.identity}`: {state}.** {ended}{of} trials ended ({counts})"
        f"{f', {running} running' if running else ''}; algorithm `{view.config.algorithm}`."
    ]
    if view.stopped:
        lines.append(f"**Stopped early:** {view.stopped}.")
    return "\n\n".join(lines)


def _warnings(view: SweepView) -> list[str]:
    return [f"> **Warning:** {text}" for text in view.warnings]


def _best_section(view: SweepView) -> str:
    objective = view.config.objective
    trials = ranked(view.config, view.trials)
    if not trials:
        return f"**Best {objective.metric}:** {_none_yet(view)} ({objective.direction})."
    best = trials[0]
    link = _run_link(view, best, f"trial {best.number}")
    lines = [
        f"**Best {objective.metric} ({objective.direction}): {_fmt(best.values[0])}** in {link}: "
        + _params_line(best)
    ]
    if view.registered:
        name, _, version = view.registered.rpartition("/")
        lines.append(f"Registered as model **{name}** version **{version}**.")
    table = _table(view, trials[:TOP], [objective.metric])
    feasible = " feasible" if objective.constraints else ""
    lines.append(f"### Top {min(TOP, len(trials))} of {len(trials)}{feasible}\n\n{table}")
    return "\n\n".join(lines)


def _front_section(view: SweepView) -> str:
    names = list(view.config.objective.names)
    trials = front(view.config, view.trials)
    if not trials:
        return f"**Pareto front:** {_none_yet(view)}."
    first_maximized = view.config.objective.directions[0] == "maximize"
    trials = sorted(trials, key=lambda t: t.values[0], reverse=first_maximized)
    wanted = ", ".join(f"{m.name} ({m.direction})" for m in view.config.objective.metrics)
    more = f" (the first {TOP} by {names[0]})" if len(trials) > TOP else ""
    heading = f"### Pareto front: {len(trials)} trial{'' if len(trials) == 1 else 's'}{more}"
    table = _table(view, trials[:TOP], names)
    return f"{heading}\n\nNo trial beats these on every objective: {wanted}.\n\n{table}"


def _none_yet(view: SweepView) -> str:
    """A best or a front not there yet: with constraints, none of the results satisfies them."""
    return NONE_FEASIBLE if view.config.objective.constraints else "none yet"


def _importances(importances: dict[str, float]) -> str:
    rows = sorted(importances.items(), key=lambda item: item[1], reverse=True)
    body = "\n".join(f"| {_cell(name)} | {_fmt(value)} |" for name, value in rows)
    return f"### Parameter importances\n\n| parameter | importance |\n|---|---|\n{body}"


def _where(view: SweepView) -> str:
    runs = f"[all trials]({runs_route(view.experiment_id)}) are nested under this run"
    if view.report_path:
        page = artifact_route(view.experiment_id, view.parent_id, view.report_path)
        return f"The report: [{view.report_path}]({page}) in this run's artifacts; {runs}."
    when = "when the sweep completes" if view.state == "running" else "by `mlflow-sweeper report --log`"
    return f"The report lands under `report/` in this run's artifacts {when}; {runs}."


# ---- helpers ----------------------------------------------------------------------------------------


def _table(view: SweepView, trials: list[FrozenTrial], metrics: list[str]) -> str:
    params: list[str] = []
    for trial in trials:
        params.extend(name for name in trial.params if name not in params)
    head = ["trial", *metrics, *params]
    lines = ["| " + " | ".join(_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    for trial in trials:
        cells = [_run_link(view, trial, str(trial.number))]
        cells += [_fmt(v) for v in trial.values]
        cells += [_cell(_fmt(trial.params[name])) if name in trial.params else "" for name in params]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_link(view: SweepView, trial: FrozenTrial, text: str) -> str:
    """A link to the trial's run page, under its own experiment (an earlier result a warm start
    brought in may live in another one)."""
    run_id = trial.user_attrs.get(RUN_ATTR)
    experiment_id = trial.user_attrs.get(WARM_EXPERIMENT, view.experiment_id)
    return f"[{text}]({run_route(experiment_id, run_id)})" if run_id else text


def _params_line(trial: FrozenTrial) -> str:
    shown = ", ".join(f"`{name}` = {_cell(_fmt(value))}" for name, value in trial.params.items())
    return shown or "(no parameters)"


def _number(value) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
