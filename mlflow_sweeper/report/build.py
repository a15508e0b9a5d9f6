"""Build a sweep's report from its trials: files in a directory, importances in memory.

A report must never fail a sweep: each part is built under its own guard, a failure is logged
in one line and noted in the report, and the other parts still land.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from ..config import SweepConfig
from ..coordination import RUN_ATTR
from ..coordination.names import WARM_ATTR
from .charts import CHARTS, Chart, why_not_drawn
from .context import ReportContext
from .importance import MIN_COMPLETE, importance_metrics, importances
from .page import Section, write_page
from .study_copy import in_memory_study
from .table import write_trials_csv

log = logging.getLogger(__name__)

TRIALS_CSV = "trials.csv"
PAGE = "report.html"
_PYPLOT_LOCK = threading.Lock()  # pyplot keeps global state: one drawing at a time


@dataclass
class Report:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    importance: dict[str, float] = field(default_factory=dict)  # param -> importance (first objective)
    importance_by_objective: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # parts that could not be built, one line each
    seconds: float = 0.0
    finished: int = 0  # trials finished when it was built: the step its metrics are logged at

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of the report: `importance/<param>` (see importance_metrics)."""
        return importance_metrics(self.importance_by_objective)


def build_report(
    config: SweepConfig,
    trials: list[FrozenTrial],
    out_dir: str | Path,
    directions: list[str] | None = None,
    charts: tuple[Chart, ...] = CHARTS,
) -> Report:
    """Write trials.csv, report.html and the PNGs of `trials` into `out_dir`; never raises for a
    part that fails (see Report.problems). `directions` overrides the config's, if given;
    `charts` are the charts to try, in page order."""
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, finished=sum(t.state.is_finished() for t in trials))
    objectives = config.objective if directions is None else config.objective.with_directions(directions)
    _guard(
        report,
        "trials.csv",
        lambda: report.files.append(write_trials_csv(out / TRIALS_CSV, trials, objectives, config.space)),
    )
    study = None
    try:
        study = in_memory_study(trials, objectives)
    except Exception as exc:  # noqa: BLE001 - then only the table lands
        _problem(report, "charts", exc)
    ctx = ReportContext(config, trials, objectives, study)
    with warnings.catch_warnings():
        # Plotting libraries warn about degenerate data (one trial, equal values): the report notes
        # what it could not draw, and the console of the agent stays free of library warnings.
        warnings.simplefilter("ignore")
        _guard(report, "importances", lambda: _importances(ctx, report))
        sections = [s for s in (_page_section(ctx, chart, report) for chart in charts) if s is not None]
        drawn = {s.key for s in sections if s.pending is None}
        for chart in charts:
            name = f"{chart.key}.png"
            if chart.png is not None and chart.key in drawn:
                _guard(report, name, lambda c=chart: _png(ctx, c, out, report))
            if chart.always_png and out / name not in report.files:  # not drawable, or drawing failed
                why = "it could not be drawn (report.html says why)" if chart.key in drawn else None
                _guard(report, name, lambda c=chart, w=why: _png(ctx, _noted(c, w), out, report))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _guard(report, PAGE, lambda: report.files.append(_page(ctx, sections, report, out / PAGE)))
    report.seconds = time.perf_counter() - started
    log.debug("report of %s built in %.2f s into %s", config.identity, report.seconds, out)
    return report


# ---- parts ------------------------------------------------------------------------------------------


@dataclass
class _ChartSection(Section):
    key: str = ""


def _applies(ctx: ReportContext, chart: Chart, report: Report) -> bool:
    try:
        return bool(chart.applies(ctx))
    except Exception as exc:  # noqa: BLE001
        _problem(report, chart.title, exc)
        return False


def _page_section(ctx: ReportContext, chart: Chart, report: Report) -> _ChartSection | None:
    """The chart's section; where it does not apply yet, a line saying what it waits for (so a
    reader sees why it is missing rather than wonder); None to leave it out."""
    if _applies(ctx, chart, report):
        return _section(ctx, chart, report)
    if chart.pending is None:
        return None
    try:
        waiting = chart.pending(ctx)
    except Exception as exc:  # noqa: BLE001
        _problem(report, chart.title, exc)
        return None
    return _ChartSection(chart.title, key=chart.key, pending=waiting) if waiting else None


def _section(ctx: ReportContext, chart: Chart, report: Report) -> _ChartSection:
    section = _ChartSection(chart.title, key=chart.key)
    try:
        section.figures = list(chart.figures(ctx))
    except Exception as exc:  # noqa: BLE001
        section.note = f"could not be drawn: {type(exc).__name__}: {exc}"
        _problem(report, chart.title, exc)
    return section


def _importances(ctx: ReportContext, report: Report) -> None:
    if ctx.study is None or ctx.complete < MIN_COMPLETE:
        return
    for index, name, _, evaluator in ctx.per_objective():
        found = importances(ctx.importance_study, evaluator, index, ctx.objectives.multi)
        report.importance_by_objective[name] = found
    report.importance = dict(next(iter(report.importance_by_objective.values()), {}))


def _noted(chart: Chart, why: str | None = None) -> Chart:
    """`chart` drawn as a picture of why it cannot be drawn (`why`, else `why_not_drawn`): the
    UI's preview says so."""

    def note(ctx: ReportContext):
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(figsize=(6.4, 2.4))
        axes.axis("off")
        axes.set_title(chart.title)
        axes.text(0.5, 0.3, why or why_not_drawn(ctx), ha="center", va="center", wrap=True, color="#555")
        return axes

    return dataclasses.replace(chart, png=note)


def _png(ctx: ReportContext, chart: Chart, out: Path, report: Report) -> None:
    with _PYPLOT_LOCK:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")  # no display needed; left alone if the host program chose one
        import matplotlib.pyplot as plt

        before = set(plt.get_fignums())
        try:
            axes = chart.png(ctx)
            figure = getattr(axes, "figure", None) or axes.flat[0].figure
            path = out / f"{chart.key}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            report.files.append(path)
        finally:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)


def _page(ctx: ReportContext, sections: list[Section], report: Report, path: Path) -> Path:
    if report.problems:
        sections = [*sections, Section("Problems", note="; ".join(report.problems))]
    return write_page(path, f"Sweep {ctx.config.identity}", _summary(ctx), sections)


def _summary(ctx: ReportContext) -> list[tuple[str, str]]:
    states = Counter(trial.state for trial in ctx.trials)
    rows = [
        ("sweep", ctx.config.identity),
        ("algorithm", str(ctx.config.algorithm)),
        ("trials", ", ".join(f"{n} {s.name.lower()}" for s, n in states.items()) or "none yet"),
    ]
    warm = Counter(t.user_attrs[WARM_ATTR] for t in ctx.trials if WARM_ATTR in t.user_attrs)
    if warm:
        sources = ", ".join(f"{n} from {source}" for source, n in warm.items())
        rows.append(("warm start", f"{sum(warm.values())} of these are earlier results ({sources})"))
    if ctx.objectives.optimized:
        rows.append(
            (
                "objective",
                ", ".join(
                    f"{d} {n}" for n, d in zip(ctx.objectives.names, ctx.objectives.directions, strict=True)
                ),
            )
        )
    best = _best(ctx)
    if best is not None:
        value = ", ".join(f"{v:.6g}" for v in best.values)
        params = ", ".join(f"{k}={v}" for k, v in best.params.items())
        source = best.user_attrs.get(WARM_ATTR)
        earlier = f", an earlier result from {source}" if source else ""
        run = best.user_attrs.get(RUN_ATTR, "-")
        rows.append(("best", f"{value} in trial {best.number} (run {run}{earlier}): {params}"))
    rows.append(("generated", dt.datetime.now().isoformat(timespec="seconds")))
    return rows


def _best(ctx: ReportContext) -> FrozenTrial | None:
    if ctx.study is None or ctx.objectives.multi:
        return None
    from ..constraints import feasible_only

    done = feasible_only(ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if not done:
        return None
    pick = max if ctx.objectives.directions[0] == "maximize" else min
    return pick(done, key=lambda t: t.value)


# ---- guards -----------------------------------------------------------------------------------------


def _guard(report: Report, what: str, action) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - one part of the report, never the sweep
        _problem(report, what, exc)


def _problem(report: Report, what: str, exc: BaseException) -> None:
    line = f"{what}: {type(exc).__name__}: {exc}".replace("\n", " ")
    report.problems.append(line)
    log.warning("report: could not build %s", line)
