"""The report's charts: Optuna's plotly figures for the page, its matplotlib ones for the PNGs.

Each chart says when it applies and how to draw itself; the builder guards every drawing, so a
chart that fails leaves the others standing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from optuna import visualization as vis
from optuna.visualization import matplotlib as vis_mpl

from ..search.sensitivity import REPORT_SECTION
from .context import ReportContext
from .importance import MIN_COMPLETE
from .parallel_png import parallel_png


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    applies: Callable[[ReportContext], bool]
    figures: Callable[[ReportContext], list]  # plotly figures for report.html
    png: Callable[[ReportContext], object] | None = None  # draws matplotlib axes for <key>.png
    # When it does not apply yet: what it waits for (a line on the page), or None to leave it out.
    pending: Callable[[ReportContext], str | None] | None = None
    # One of the PNGs every report has (the MLflow UI previews them): where the chart cannot be
    # drawn, the PNG says why (`why_not_drawn`) instead of missing.
    always_png: bool = False


def _history(ctx: ReportContext) -> list:
    return [
        vis.plot_optimization_history(ctx.study, target=target, target_name=name)
        for _, name, target, _ in ctx.per_objective()
    ]


def _history_png(ctx: ReportContext):
    _, name, target, _ = next(ctx.per_objective())
    return vis_mpl.plot_optimization_history(ctx.study, target=target, target_name=name)


def _parallel(ctx: ReportContext) -> list:
    return [
        vis.plot_parallel_coordinate(ctx.study, target=target, target_name=name)
        for _, name, target, _ in ctx.per_objective()
    ]


def _parallel_png(ctx: ReportContext):
    return parallel_png(ctx)


def _importance(ctx: ReportContext) -> list:
    return [
        vis.plot_param_importances(ctx.importance_study, evaluator=evaluator, target=target, target_name=name)
        for _, name, target, evaluator in ctx.per_objective()
    ]


def _importance_png(ctx: ReportContext):
    _, name, target, evaluator = next(ctx.per_objective())
    return vis_mpl.plot_param_importances(
        ctx.importance_study, evaluator=evaluator, target=target, target_name=name
    )


def _slices(ctx: ReportContext) -> list:
    return [
        vis.plot_slice(ctx.study, target=target, target_name=name)
        for _, name, target, _ in ctx.per_objective()
    ]


def _pareto(ctx: ReportContext) -> list:
    return [vis.plot_pareto_front(ctx.study, target_names=list(ctx.objectives.names))]


def _pareto_png(ctx: ReportContext):
    return vis_mpl.plot_pareto_front(ctx.study, target_names=list(ctx.objectives.names))


def _sensitivity(ctx: ReportContext) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    effects = ctx.sections[REPORT_SECTION]
    metric = ctx.objectives.names[0]
    spread = go.Figure(
        go.Bar(
            x=[e.spread for e in reversed(effects)],
            y=[e.name for e in reversed(effects)],
            orientation="h",
        )
    )
    spread.update_layout(
        title="Spread of the objective per parameter (max - min, others at base)",
        xaxis_title=f"spread of {metric}",
    )
    along = make_subplots(
        rows=1, cols=len(effects), subplot_titles=[e.name for e in effects], shared_yaxes=True
    )
    for column, effect in enumerate(effects, start=1):
        along.add_trace(
            go.Scatter(
                x=[str(v) if isinstance(v, str) else v for v, _ in effect.points],
                y=[objective for _, objective in effect.points],
                mode="lines+markers",
                name=effect.name,
            ),
            row=1,
            col=column,
        )
    along.update_layout(title=f"{metric} along each parameter, the others at base", showlegend=False)
    along.update_yaxes(title_text=metric, row=1, col=1)
    return [spread, along]


def _sensitivity_png(ctx: ReportContext):
    import matplotlib.pyplot as plt

    effects = list(reversed(ctx.sections[REPORT_SECTION]))
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(effects) + 1.5))
    axes.barh([e.name for e in effects], [e.spread for e in effects], color="tab:blue")
    axes.set_xlabel(f"spread of {ctx.objectives.names[0]} (max - min, others at base)")
    axes.set_title("Sensitivity")
    return axes


def _timeline(ctx: ReportContext) -> list:
    return [vis.plot_timeline(ctx.study)]


def _intermediate(ctx: ReportContext) -> list:
    return [vis.plot_intermediate_values(ctx.study)]


def _next_sweep(ctx: ReportContext) -> list:
    """What `mlflow-sweeper refine` would change, a row per parameter."""
    import plotly.graph_objects as go

    from ..refine import advise, follow_up_name, next_sweep_name

    advice = advise(ctx.config, ctx.trials)
    try:
        name = follow_up_name(ctx.config)  # past the follow-ups already run, as refine names it
    except Exception:  # noqa: BLE001 - the storage unread: the first follow-up's name
        name = next_sweep_name(ctx.config.sweep_name)
    rows = [(c.name, c.kind, c.why) for c in advice.changes]
    cells = {"values": [list(column) for column in zip(*rows, strict=True)]}
    table = go.Figure(go.Table(header={"values": ["parameter", "advice", "why"]}, cells=cells))
    table.update_layout(
        title=f"Next sweep: `mlflow-sweeper refine` writes '{name}', "
        f"warm-started from this one ({len(advice.top)} best trial(s) considered)"
    )
    return [table]


def _importance_pending(ctx: ReportContext) -> str | None:
    if ctx.study is None or ctx.complete >= MIN_COMPLETE:
        return None
    return f"needs {MIN_COMPLETE} completed trials ({ctx.complete} so far): no importances yet"


def why_not_drawn(ctx: ReportContext) -> str:
    """Why a chart of the results is missing: no objective to plot, or too few results yet."""
    if not ctx.objectives.optimized:
        return "the sweep has no objective (spec): nothing to plot; trials.csv lists its trials"
    if ctx.study is None:
        return "the results could not be read for charts (report.html says why)"
    if ctx.complete == 0:
        return "no trial has completed with a value yet"
    return f"needs {MIN_COMPLETE} completed trials ({ctx.complete} so far)"


def _has_study(ctx: ReportContext) -> bool:
    return ctx.study is not None and ctx.complete >= 1


CHARTS: tuple[Chart, ...] = (
    Chart("history", "Optimization history", _has_study, _history, _history_png, why_not_drawn, True),
    Chart("parallel", "Parallel coordinates", _has_study, _parallel, _parallel_png, always_png=True),
    Chart(
        "importance",
        "Parameter importances",
        lambda ctx: ctx.study is not None and ctx.complete >= MIN_COMPLETE,
        _importance,
        _importance_png,
        _importance_pending,
        always_png=True,
    ),
    Chart("slice", "Slice plots", _has_study, _slices),
    Chart("pareto", "Pareto front", lambda ctx: _has_study(ctx) and ctx.pareto, _pareto, _pareto_png),
    Chart(
        REPORT_SECTION,
        "Sensitivity",
        lambda ctx: _has_study(ctx) and REPORT_SECTION in ctx.sections,  # the algorithm's own section
        _sensitivity,
        _sensitivity_png,
    ),
    Chart(
        "intermediate",
        "Intermediate values (early stopping)",
        lambda ctx: ctx.study is not None and any(t.intermediate_values for t in ctx.study.trials),
        _intermediate,
    ),
    Chart("next", "Next sweep", lambda ctx: _has_study(ctx) and bool(ctx.config.space.axes), _next_sweep),
    Chart("timeline", "Timeline", lambda ctx: ctx.study is not None and bool(ctx.study.trials), _timeline),
)
