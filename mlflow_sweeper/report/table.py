"""`trials.csv`: one row per Optuna trial of the sweep, every parameter in a column of its own."""

from __future__ import annotations

import csv
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from ..config import Objective
from ..constraints import feasible_text, is_feasible
from ..coordination import ATTEMPT, REASON, RUN_ATTR
from ..coordination.names import WARM_ATTR
from ..coordination.tallies import interrupted
from ..search.space import SearchSpace
from ..secrets import redact_value

LEADING = ("number", "state", "attempts")
TRAILING = ("run_id", "start", "duration", "fail_reason")
WARM_COLUMN = WARM_ATTR  # where a warm-started trial's result came from
FEASIBLE_COLUMN = "feasible"  # true or false once a trial's constraints were measured


def param_names(trials: list[FrozenTrial]) -> list[str]:
    """Parameters in the order trials first used them (conditional ones included)."""
    names: dict[str, None] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        for name in trial.params:
            names.setdefault(name, None)
    return list(names)


def value_columns(objectives: Objective) -> list[str]:
    return list(objectives.names) if objectives.multi else ["value"]


def write_trials_csv(
    path: Path, trials: list[FrozenTrial], objectives: Objective, space: SearchSpace | None = None
) -> Path:
    """The table; with the sweep's `space`, fixed parameters too (each where its `when` holds),
    every parameter in config order."""
    fixed = space.fixed_for if space is not None else (lambda params: {})
    rows = {trial.number: {**trial.params, **fixed(trial.params)} for trial in trials}
    params = param_names(trials)
    if space is not None:
        used = {name for row in rows.values() for name in row}
        ordered = [name for name in space.parameter_names if name in used]
        params = ordered + [name for name in params if name not in ordered]
    values = value_columns(objectives)
    judged = [FEASIBLE_COLUMN] if objectives.constraints else []  # the sweep has spec.constraints
    marked = [WARM_COLUMN] if any(WARM_ATTR in t.user_attrs for t in trials) else []  # earlier results
    taken = set(LEADING) | set(TRAILING) | set(values) | set(judged) | set(marked)
    param_columns = [f"param.{name}" if name in taken else name for name in params]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*LEADING, *param_columns, *values, *judged, *TRAILING, *marked])
        for trial in sorted(trials, key=lambda t: t.number):
            ran_here = WARM_ATTR not in trial.user_attrs  # an earlier result ran in its own sweep
            writer.writerow(
                redact_value(
                    [
                        trial.number,
                        state_name(trial),
                        trial.system_attrs.get(ATTEMPT, 1) if ran_here else "",
                        *(rows[trial.number].get(name, "") for name in params),
                        *_values(trial, len(values)),
                        *([_feasible(trial)] if judged else []),
                        trial.user_attrs.get(RUN_ATTR, ""),
                        _start(trial) if ran_here else "",
                        _duration(trial) if ran_here else "",
                        trial.user_attrs.get(REASON, ""),
                        *([trial.user_attrs.get(WARM_ATTR, "")] if marked else []),
                    ]
                )
            )
    return path


def state_name(trial: FrozenTrial) -> str:
    """Optuna's state, but INTERRUPTED for an attempt cancelled by Ctrl-C or SIGTERM: FAIL in
    Optuna, yet nothing failed (it is run again without counting an attempt)."""
    return "INTERRUPTED" if trial.state == TrialState.FAIL and interrupted(trial) else trial.state.name


def _feasible(trial: FrozenTrial) -> str:
    """As the run's `sweeper.feasible` tag says: empty while its constraints are not measured."""
    return feasible_text(is_feasible(trial)) if trial.constraints else ""


def _values(trial: FrozenTrial, count: int) -> list:
    values = trial.values or []
    return [values[i] if i < len(values) and values[i] is not None else "" for i in range(count)]


def _start(trial: FrozenTrial) -> str:
    return trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else ""


def _duration(trial: FrozenTrial) -> str:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return ""
    return f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.3f}"
