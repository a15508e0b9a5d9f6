"""The parallel-coordinates PNG, readable up to 20 parameters and beyond.

Optuna's matplotlib figure has a fixed size and one axis per parameter: past six or seven the
labels run into each other. Here the most important parameters (by the report's importances,
else in config order) get an axis each, at most MAX_AXES on a figure wide enough for them, with
short, slanted labels; the others are named in a note on the image.
"""

from __future__ import annotations

import textwrap

import optuna
from optuna.trial import TrialState, create_trial
from optuna.visualization import matplotlib as vis_mpl

from .context import ReportContext
from .importance import MIN_COMPLETE, importances

MAX_AXES = 8
LABEL_CHARS = 16
INCHES_PER_AXIS = 1.25


def ranked_parameters(ctx: ReportContext) -> list[str]:
    """The parameters the study's trials have, most important first when importances are known."""
    present: list[str] = []
    for trial in ctx.study.trials:
        present.extend(name for name in trial.params if name not in present)
    order = [name for name in ctx.config.space.axes if name in present] + [
        name for name in present if name not in ctx.config.space.axes
    ]
    if ctx.complete < MIN_COMPLETE:
        return order
    try:
        found = importances(ctx.importance_study, ctx.evaluators[0], 0, ctx.objectives.multi)
    except Exception:  # noqa: BLE001 - an ordering aid: without it, config order
        return order
    return sorted(order, key=lambda name: -found.get(name, -1.0))


def short_label(name: str, limit: int = LABEL_CHARS) -> str:
    """`a_rather_long_parameter_name` -> `a_rather…er_name`: both ends, which tell names apart."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return f"{name[:head]}…{name[-(limit - 1 - head) :]}"


def ranked_copy(study: optuna.Study, shown: list[str]) -> optuna.Study:
    """The completed trials with `shown` renamed `00`, `01`, ...: Optuna orders the axes by name,
    so this puts them in rank order (the labels are set back to the real names)."""
    copy = optuna.create_study(directions=study.directions)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        kept = [(f"{rank:02d}", name) for rank, name in enumerate(shown) if name in trial.params]
        copy.add_trial(
            create_trial(
                params={key: trial.params[name] for key, name in kept},
                distributions={key: trial.distributions[name] for key, name in kept},
                values=trial.values,
                system_attrs=trial.system_attrs,
            )
        )
    return copy


def parallel_png(ctx: ReportContext):
    _, name, target, _ = next(ctx.per_objective())
    ranked = ranked_parameters(ctx)
    shown, rest = ranked[:MAX_AXES], ranked[MAX_AXES:]
    axes = vis_mpl.plot_parallel_coordinate(ranked_copy(ctx.study, shown), target=target, target_name=name)
    figure = axes.figure
    figure.set_size_inches(max(6.4, INCHES_PER_AXIS * (len(shown) + 1) + 2.0), 6.5)
    labels = [label.get_text() for label in axes.get_xticklabels()]
    labels[1:] = [short_label(shown[int(key)]) if key.isdigit() else key for key in labels[1:]]
    axes.set_xticks(axes.get_xticks(), labels, rotation=30, ha="right", fontsize=9)
    for twin in figure.axes:
        twin.tick_params(axis="y", labelsize=7)
        if twin is not axes:
            twin.grid(False)  # one grid per value axis hides the lines behind it
    if rest:
        ranking = "less important" if ctx.complete >= MIN_COMPLETE else "later in the config"
        note = f"Not shown ({len(rest)} {ranking}): " + ", ".join(rest)
        lines = textwrap.wrap(note, int(figure.get_size_inches()[0] * 14))
        figure.subplots_adjust(bottom=0.22 + 0.035 * len(lines))
        figure.text(0.01, 0.01, "\n".join(lines), fontsize=8, va="bottom", ha="left")
    return axes
