"""What to sweep next: a follow-up config from a sweep's results.

Each swept range is narrowed around the best trials (the top quarter by value, feasible ones; the
Pareto front with several objectives), widened past a bound the best trial sits on, and a
parameter that barely matters is fixed at the best trial's value. The new config starts from
this sweep's results (`warm_start`), so nothing already run is run again. `refine` writes it as a
file; the report shows the same advice in its "Next sweep" section.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from .config import SweepConfig
from .config.checks import is_local_project
from .config.loading import YAML_FLOAT, YAML_FLOAT_FIRST
from .config.warm_start import SweepSource
from .constraints import is_feasible
from .search.chance import RankTests, rank_tests
from .search.importance import finite, make_evaluator
from .search.space import Categorical, Range
from .secrets import redact

log = logging.getLogger(__name__)

TOP_SHARE = 0.25  # the best trials: this share of the feasible complete ones
EDGE = 0.02  # the best trial sits on a bound when within this share of the range's width of it
WIDEN = 0.5  # a bound the best sit on moves out by this share of the width (log: of the decades)
MARGIN = 0.25  # room kept around the best trials' spread, as a share of that spread
MIN_ROOM = 0.1  # ... and at least this share of the old width
NEGLIGIBLE = 0.02  # an importance below this fixes the parameter
EVEN_SHARE = 0.25  # ... as does one below this share of 1 / the parameters that is no more than chance
MIN_TRIALS_FOR_IMPORTANCE = 8


@dataclass(frozen=True)
class Change:
    """One parameter's advice: `kind` is narrow | widen | fix | keep; `spec` its new YAML value."""

    name: str
    kind: str
    spec: Any
    why: str


@dataclass(frozen=True)
class Advice:
    identity: str
    best: FrozenTrial | None
    top: list[FrozenTrial]
    changes: list[Change]
    complete: int

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.kind != "keep"]


def best_trials(config: SweepConfig, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The top quarter by value of the feasible complete trials (at least one), best first; with
    several objectives, the Pareto front."""
    done = _judged(trials)
    if not done:
        return []
    if config.objective.multi:
        from .coordination.tallies import pareto_front

        directions = [
            StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE
            for d in config.objective.directions
        ]
        return pareto_front(done, directions)
    sign = -1.0 if config.objective.direction == "maximize" else 1.0
    ranked = sorted(done, key=lambda t: (sign * t.values[0], t.number))
    return ranked[: max(1, math.ceil(len(ranked) * TOP_SHARE))]


def advise(config: SweepConfig, trials: list[FrozenTrial]) -> Advice:
    top = best_trials(config, trials)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    space = config.space
    controllers = {ref for refs in space.conditions.values() for ref in refs}
    evidence = _evidence(config, trials) if top else _Evidence({}, [])
    changes = []
    for name, axis in space.axes.items():
        seen = [t.params[name] for t in top if name in t.params]
        if not seen or name in controllers:
            why = "kept: no best trial has it" if not seen else "kept: other parameters' `when` reads it"
            changes.append(Change(name, "keep", _spec_of(config, name), why))
            continue
        on_a_bound = isinstance(axis, Range) and any(_bounds_sat_on(config, axis, seen))  # widened
        why = None if on_a_bound else evidence.negligible(name, len(space.axes))
        if why and len(space.axes) > 1 and name not in space.conditions:
            changes.append(
                Change(name, "fix", top[0].params[name], f"fixed at the best trial's value: {why}")
            )
            continue
        if isinstance(axis, Range):
            changes.append(_range_change(config, name, axis, seen, len(top)))
        else:
            changes.append(_list_change(config, name, axis, seen))
    best = top[0] if top and not config.objective.multi else None
    return Advice(config.identity, best, top, changes, complete)


@dataclass(frozen=True)
class _Evidence:
    """What says a parameter barely matters: its importance (the largest over the objectives) and
    a rank test per objective (see search/chance.py)."""

    importance: dict[str, float]
    tests: list[RankTests]

    def negligible(self, name: str, parameters: int) -> str | None:
        """Why `name` has next to no importance; None when it has more, or its ranks differ."""
        weight = self.importance.get(name)
        if weight is None or any(t.difference(name) for t in self.tests):
            return None
        if weight < NEGLIGIBLE:
            return f"importance {weight:.3f} (next to none)"
        if self.tests and all(t.no_difference(name) for t in self.tests) and weight < EVEN_SHARE / parameters:
            p = min(t.p[name] for t in self.tests)
            return (
                f"importance {weight:.3f}, and its values tell better trials from worse no better than "
                f"chance (p = {p:.2f})"
            )
        return None


def _spec_of(config: SweepConfig, name: str) -> Any:
    return config.written.get("parameters", {}).get(name)


def _extra_keys(config: SweepConfig, name: str) -> dict:
    """Keys of a parameter's mapping that refine leaves as they are (`when`, `type`)."""
    raw = _spec_of(config, name)
    return {k: v for k, v in raw.items() if k in ("when", "type")} if isinstance(raw, dict) else {}


def _bounds_sat_on(config: SweepConfig, axis: Range, seen: list) -> tuple[bool, bool]:
    """Does the best trial (with several objectives: any of the front; `seen`: the best trials'
    values, best first) sit on the range's low bound, its high one? Not where the top quarter
    reaches: a 30-trial sweep's top quarter often spans to a bound that the optimum lies inside
    of, and widening then spends the next sweep past it."""
    forward = math.log if axis.log else float
    low, high = forward(axis.low), forward(axis.high)
    deciding = seen if config.objective.multi else seen[:1]
    return (
        forward(min(deciding)) - low <= EDGE * (high - low),
        high - forward(max(deciding)) <= EDGE * (high - low),
    )


def _range_change(config: SweepConfig, name: str, axis: Range, seen: list, count: int) -> Change:
    forward, back = (math.log, math.exp) if axis.log else (float, float)
    low, high = forward(axis.low), forward(axis.high)
    width = high - low
    best_low, best_high = forward(min(seen)), forward(max(seen))
    on_low, on_high = _bounds_sat_on(config, axis, seen)
    who = "the best trials sit" if config.objective.multi else "the best trial sits"
    room = max(MARGIN * (best_high - best_low), MIN_ROOM * width)
    new_low, new_high = max(low, best_low - room), min(high, best_high + room)
    notes, kept = [], []
    if on_low:
        new_low = low - WIDEN * width
        floor = _floor(axis)
        if not axis.log and floor is not None and back(new_low) < floor:
            new_low = forward(floor)  # a non-negative parameter stays so, a positive one positive
    if on_high:
        new_high = high + WIDEN * width
    lo, hi = _snap(axis, back(new_low), back(new_high))
    lo = _in_domain(axis, lo)
    if on_low and lo < axis.low:
        notes.append(f"{who} on its lower bound {axis.low:g}")
    elif on_low:
        kept.append(f"{who} on its lower bound {axis.low:g}, kept: {_below(axis)}")
    if on_high:
        notes.append(f"{who} on its upper bound {axis.high:g}")
    spec = {**_range_spec(axis, lo, hi), **_extra_keys(config, name)}
    was = f"[{axis.low:g}, {axis.high:g}]"
    if notes:
        # past one bound, and maybe narrowed around the best trials on the other side: "moved"
        verb = "widened" if lo <= axis.low and hi >= axis.high else "moved"
        why = f"{verb} from {was} to [{lo:g}, {hi:g}]: " + "; ".join(notes + kept)
        return Change(name, "widen", spec, why)
    if forward(hi) - forward(lo) < 0.9 * width:
        why = f"narrowed from {was} to [{lo:g}, {hi:g}] around the best {count} trial(s)"
        return Change(name, "narrow", spec, "; ".join([why, *kept]))
    if kept:
        return Change(name, "keep", _spec_of(config, name), "; ".join(kept))
    return Change(name, "keep", _spec_of(config, name), "kept: the best trials spread over the whole range")


def _floor(axis: Range) -> float | None:
    """The lowest a widened (not log) range may reach: an int range of positive values stays at
    1 or more (a count, such as epochs or layers, at 0 is no run at all), a non-negative range
    non-negative; None: no floor."""
    if axis.is_int and axis.low >= 1:
        return 1
    return 0.0 if axis.low >= 0 else None


def _below(axis: Range) -> str:
    """Why a range whose best trial sits on its low bound was not widened past it."""
    if axis.low > 0:
        return "a count of 1 or more, and none lies below it"
    return "the range holds no negative values"


def _snap(axis: Range, low: float, high: float) -> tuple[float | int, float | int]:
    """Bounds as the range's kind needs them: whole numbers, or on its step's lattice (so the
    earlier grid points stay on the new grid)."""
    if axis.is_int or axis.step is not None:
        step = axis.step or 1
        low = axis.low + math.floor((low - axis.low) / step + 1e-9) * step
        high = axis.low + math.ceil((high - axis.low) / step - 1e-9) * step
        if axis.is_int:
            return int(low), int(high)
        digits = max(_decimals(axis.low), _decimals(step))
        return round(low, digits), round(high, digits)
    if axis.log:
        low, high = max(low, 1e-300), high
    return _round(low), _round(high)


def _in_domain(axis: Range, low: float | int) -> float | int:
    """A low bound where the range's kind may go, on its lattice: a log range above 0 (an int one
    at 1 or more), a count at 1 or more, a non-negative range at 0 or more. Snapping a widened
    bound down to a whole number or a step can cross those."""
    floor = (1 if axis.is_int else None) if axis.log else _floor(axis)
    if floor is None or low >= floor:
        return low
    step = axis.step or (1 if axis.is_int else None)
    if step is None:
        return floor
    on_lattice = axis.low + math.ceil((floor - axis.low) / step - 1e-9) * step  # the first at or past it
    if axis.is_int:
        return int(on_lattice)
    return round(on_lattice, max(_decimals(axis.low), _decimals(step)))


def _decimals(number: float) -> int:
    text = repr(float(number))
    return len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 6


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _range_spec(axis: Range, low: float | int, high: float | int) -> dict:
    spec: dict[str, Any] = {"low": low, "high": high}
    if axis.log:
        spec["log"] = True
    if axis.step is not None and not (axis.is_int and axis.step == 1):  # an int range's too
        spec["step"] = axis.step
    return spec


def _list_change(config: SweepConfig, name: str, axis: Categorical, seen: list) -> Change:
    """A list of numbers whose best trials use its last (or first) value gets the next value past
    it, spaced as its last two values are (geometrically, when they grow by a ratio)."""
    values = list(axis.values)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numeric or len(values) < 2 or values != sorted(values):
        return Change(name, "keep", _spec_of(config, name), "kept: a list of choices")
    added, notes = [], []
    geometric = _looks_geometric(values)
    after = _next_value(values[-2], values[-1], geometric) if max(seen) == values[-1] else None
    if after is not None:
        added.append(after)
        notes.append(f"the best trials use its largest value {values[-1]}")
    at_low = min(seen) == values[0]
    before = _next_value(values[1], values[0], geometric) if at_low else None
    kept = "kept: the best trials use inner values"
    if before is not None and not (values[0] >= 0 > before):  # a list of non-negatives stays one
        added.insert(0, before)
        notes.append(f"the best trials use its smallest value {values[0]}")
    elif at_low:
        kept = (
            f"kept: the best trials use its smallest value {values[0]}, and no value below it is spaced "
            "as the list is without reaching 0 or below"
        )
    if not notes:
        return Change(name, "keep", _spec_of(config, name), kept)
    new = sorted({*values, *added})
    as_list = isinstance(_spec_of(config, name), list)
    spec: Any = new if as_list else {"values": new, **_extra_keys(config, name)}
    shown = ", ".join(str(v) for v in added)
    return Change(name, "widen", spec, f"widened with {shown}: " + "; ".join(notes))


def _next_value(previous: float, last: float, geometric: bool) -> float | int | None:
    """The value past `last`, spaced from `previous` as the list is; None when there is none (a
    whole number below 1 in a geometric list of whole numbers)."""
    value = last * (last / previous) if geometric else last + (last - previous)
    if isinstance(previous, int) and isinstance(last, int):
        whole = int(round(value))
        return None if whole == last or (geometric and whole < 1) else whole
    return _round(value)


def _looks_geometric(values: list[float]) -> bool:
    """Do the (sorted, distinct) values grow by a ratio rather than a step? Three or more: by
    which of the two they keep (1, 2, 4 by a ratio; 1, 2, 3 by a step); two: by a ratio of 4 or
    more (1e-3, 1e-2)."""
    if values[0] <= 0 or len(set(values)) != len(values):
        return False
    pairs = list(zip(values, values[1:], strict=False))
    if len(values) >= 3:
        steps = [b - a for a, b in pairs]
        ratios = [b / a for a, b in pairs]
        if max(steps) - min(steps) <= 1e-9 * max(abs(v) for v in values):
            return False
        if max(ratios) - min(ratios) <= 1e-9 * max(ratios):
            return True
    return values[-1] / values[-2] >= 4


def _evidence(config: SweepConfig, trials: list[FrozenTrial]) -> _Evidence:
    """Over the feasible complete trials, for each objective: the importances (a parameter keeps
    its largest; with several objectives one may drive the second alone) and the rank tests of
    the unconditional swept parameters."""
    done = _judged(trials)
    names = [n for n in config.space.axes if n not in config.space.conditions]
    importance: dict[str, float] = {}
    tests = []
    for index in range(len(config.objective.directions)):
        found = _importances(config, done, index)
        if not found:
            return _Evidence({}, [])  # no importances: nothing is fixed
        for name, weight in found.items():
            importance[name] = max(weight, importance.get(name, 0.0))
        try:
            tests.append(rank_tests(done, names, value=lambda t, i=index: t.values[i]))
        except Exception:  # noqa: BLE001 - values the test cannot group: judged by importance alone
            log.debug("rank tests failed", exc_info=True)
    return _Evidence(importance, tests)


def _importances(config: SweepConfig, done: list[FrozenTrial], index: int) -> dict[str, float]:
    """Objective `index`'s parameter importances over `done`; {} when there are too few trials or
    Optuna cannot evaluate them (conditional spaces)."""
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE or len(config.space.axes) < 2:
        return {}
    import optuna

    try:
        study = optuna.create_study(directions=list(config.objective.directions))
        study.add_trials(done)
        target = (lambda t: t.values[index]) if config.objective.multi else None
        found = optuna.importance.get_param_importances(
            study, evaluator=make_evaluator(), target=target, normalize=True
        )
    except Exception:  # noqa: BLE001 - no importances: nothing is fixed
        return {}
    return finite(found)


def _judged(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials a parameter's importance is judged on: the feasible complete ones."""
    return [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None and is_feasible(t)]


# ---- the follow-up config -------------------------------------------------------------------------

STORE_KEYS = ("output_dir", "optuna_storage", "mlflow_storage")


def next_sweep_name(name: str) -> str:
    """`lr` -> `lr-refined`, `lr-refined` -> `lr-refined2`, `lr-refined2` -> `lr-refined3`."""
    match = re.fullmatch(r"(.*)-refined(\d*)", name)
    if match is None:
        return f"{name}-refined"
    return f"{match[1]}-refined{int(match[2] or 1) + 1}"


def render(
    config: SweepConfig,
    advice: Advice,
    out: Path,
    taken: set[str] = frozenset(),
    store: str | None = None,
    name: str | None = None,
) -> str:
    """The follow-up config as YAML text, every change explained by a comment. `taken`: sweep
    names already in the storage, which the new one must not reuse; `store`: the MLflow store
    the sweep recorded (its runs, which the new sweep's warm start reads); `name`: the new
    sweep's, when the caller chose it (`follow_up_name`)."""
    raw = dict(config.written)  # `${VAR}` kept as written: the follow-up sweep reads it again
    new_name = name or _free_sweep_name(config, taken)
    if out.resolve().parent != config.base_dir:  # relative paths would point elsewhere from there
        raw.update(_paths_resolved(config, raw, store))
    sources = _warm_start_sources(config, taken)
    if config.algorithm == "sensitivity":
        # every base value written out, the default ones (a range's midpoint) too: the narrowed
        # range's midpoint is another point, and the base point would run again
        raw["base"] = _effective_base(config)
    summary = _summary(config, advice)
    lines = [f"# Refined from sweep '{config.identity}' by `mlflow-sweeper refine`: {summary}"]
    lines.append("# Its results enter this sweep through warm_start: nothing already run runs again.")
    written_warm = False
    for key, value in raw.items():
        if key == "sweep_name":
            lines.append(f"sweep_name: {new_name}  # was {config.sweep_name}")
            if "warm_start" not in raw:
                lines.append(_warm_start_yaml(sources))
                written_warm = True
        elif key == "warm_start":
            lines.append(_warm_start_yaml(sources))
            written_warm = True
        elif key == "base" and isinstance(value, dict):
            lines.extend(_base_lines(value, {c.name: c for c in advice.changes}))
        elif key == "parameters":
            lines.append("parameters:")
            by_name = {c.name: c for c in advice.changes}
            for name, spec in value.items():
                change = by_name.get(name)
                if change is not None and change.kind != "keep":
                    lines.append(f"  # {name}: {change.why}")
                    spec = change.spec
                lines.append(_indent(_dump({name: spec})))
        else:
            lines.append(_dump({key: value}))
    if not written_warm:
        lines.append(_warm_start_yaml(sources))
    return "\n".join(lines) + "\n"


def _effective_base(config: SweepConfig) -> dict:
    from .search.sensitivity import default_base

    written = config.written.get("base") or {}  # a value from `${VAR}` stays a reference
    return {**default_base(config.space), **(config.base or {}), **written}


def _base_lines(base: dict, changes: dict[str, Change]) -> list[str]:
    """A sensitivity sweep's `base`, as the new space allows: a parameter now fixed leaves it, a
    value outside a range the advice narrowed moves to its nearest bound; each said why."""
    lines, kept = [], {}
    for name, value in base.items():
        change = changes.get(name)
        if change is not None and change.kind == "fix":
            lines.append(f"# base.{name} left out: {name} is fixed now")
            continue
        spec = change.spec if change is not None and change.kind in ("narrow", "widen") else None
        if isinstance(spec, dict) and isinstance(value, int | float) and not isinstance(value, bool):
            inside = min(max(value, spec["low"]), spec["high"])
            if inside != value:
                lines.append(f"# base.{name}: was {value}, outside its new range; now its nearest bound")
                value = inside
        kept[name] = value
    if kept:
        lines.append(_dump({"base": kept}))
    return lines


def follow_up_name(
    config: SweepConfig, folders: tuple[Path, ...] = (), stored: set[str] | None = None
) -> str:
    """The name `refine` gives the follow-up sweep now (the report says it too): neither a sweep
    in the storage (`stored`, when the caller read them) nor one a config beside this one (or in
    `folders`) names, such as an earlier refine's output not run yet."""
    from .warmstart.reading import sweep_names

    taken = set(sweep_names(config.optuna_storage) if stored is None else stored)
    for folder in dict.fromkeys((config.base_dir, *folders)):
        taken |= declared_sweeps(folder)
    return _free_sweep_name(config, taken)


def declared_sweeps(folder: Path) -> set[str]:
    """The sweeps (`experiment/sweep_name`) the YAML files in `folder` name, as written."""
    names = set()
    for path in [*folder.glob("*.yaml"), *folder.glob("*.yml")]:
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                continue
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("sweep_name"), str):
            names.add(f"{data.get('experiment')}/{data['sweep_name']}")
    return names


MAX_CONFIG_BYTES = 1 << 20  # a YAML file larger than this is data, not a config


def _free_sweep_name(config: SweepConfig, taken: set[str]) -> str:
    """The follow-up sweep's name: the next one not already `taken`."""
    new_name = next_sweep_name(config.sweep_name)
    while f"{config.experiment}/{new_name}" in taken:
        new_name = next_sweep_name(new_name)
    return new_name


def _paths_resolved(config: SweepConfig, raw: dict, store: str | None) -> dict:
    """The keys whose relative paths must be absolute in a config written to another folder; a
    value from `${VAR}` stays a reference, never its value."""
    resolved = {"output_dir": str(config.output_dir), "optuna_storage": config.optuna_storage}
    if config.mlflow_storage or store:  # unnamed, the default store would follow the new folder
        resolved["mlflow_storage"] = config.mlflow_storage or store
    written_command = str(raw.get("command", ""))
    if config.command is not None:  # its `${VAR}` words kept as written, its files made absolute
        command = written_command if "${" in written_command else config.command
        resolved["command"] = _with_absolute_files(command, config.base_dir)
    elif config.entry_point is not None:
        if is_local_project(config.project):  # the loader made it absolute already
            resolved["project"] = config.project
        if isinstance(config.backend_config, str):  # a JSON file's path, made absolute too
            resolved["backend_config"] = config.backend_config
    return {
        key: value
        for key, value in resolved.items()
        if (key == "command" or "${" not in str(raw.get(key, ""))) and redact(value) == value
    }


def _warm_start_sources(config: SweepConfig, taken: set[str]) -> list[dict]:
    """The follow-up's `warm_start`: this sweep's sources as written (a `${VAR}` kept), then this
    sweep. An earlier sweep this one started from may give the new space results this one could
    not take; one deleted since would make the new config refuse to run."""
    written = config.written.get("warm_start") if isinstance(config.written, dict) else None
    written = [written] if isinstance(written, dict) else list(written or [])
    sources = [
        as_written  # each source parsed from it, in order
        for source, as_written in zip(config.warm_start, written, strict=True)
        if not isinstance(source, SweepSource) or not taken or source.sweep in taken
    ]
    sources.append({"sweep": config.identity})
    return sources


def _with_absolute_files(command: str, base_dir: Path) -> str:
    """`command` with each word naming a file beside the config made absolute: the refined
    config lies elsewhere, and a command runs in its config's folder."""
    for word in dict.fromkeys(shlex.split(command)):
        if os.path.isabs(word) or "{" in word or word.startswith("-") or not (base_dir / word).is_file():
            continue
        command = re.sub(
            rf"(?<!\S){re.escape(word)}(?!\S)", shlex.quote(str((base_dir / word).resolve())), command
        )
    return command


def _summary(config: SweepConfig, advice: Advice) -> str:
    text = f"{advice.complete} completed trials"
    if advice.best is not None and config.objective.metric:
        text += f", best {config.objective.metric}={advice.best.value:.6g} (trial {advice.best.number})"
    return text + "."


def _warm_start_yaml(sources: list[dict]) -> str:
    return "# the results of the sweeps this one refines\n" + _dump({"warm_start": sources})


class _Dumper(yaml.SafeDumper):
    """Writes what the config loader reads back as it was: a string like `1e-3` quoted."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", YAML_FLOAT, YAML_FLOAT_FIRST)


def _dump(value: dict) -> str:
    """One `key: value` entry; a mapping or list of scalars inside it on one line."""
    (inner,) = value.values()
    flow = None if isinstance(inner, dict | list) else False
    text = yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, default_flow_style=flow, allow_unicode=True, width=100
    )
    return text.rstrip()


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def default_out(config: SweepConfig, name: str | None = None) -> Path:
    """`<config>-refined.yaml` beside the config, or `-refined2.yaml`... when that file is there
    already (an earlier refine's, maybe a sweep that ran): never overwritten unasked. A config
    named as its sweep gives a file named as the new sweep `name`, where that file is free."""
    if name is not None and config.path.stem == config.sweep_name:
        named = config.base_dir / f"{name}.yaml"
        if not named.exists():
            return named
    stem = next_sweep_name(config.path.stem)
    while (config.base_dir / f"{stem}.yaml").exists():
        stem = next_sweep_name(stem)
    return config.base_dir / f"{stem}.yaml"


def _check_config_is_the_sweeps(config: SweepConfig) -> None:
    """The ranges and objective `refine` reasons from are the config's: one edited since its sweep
    ran would be advised on trials drawn from another space (a range "narrowed" past where any
    trial went). Refused as an agent refuses it, naming what changed."""
    from .errors import DriftError
    from .opening import open_sweep

    study = open_sweep(config, create=False).study
    changes = study.identity.config_changes() if study is not None else []
    if changes:
        raise DriftError(
            f"{config.path}: this config differs from the sweep {config.identity} it names "
            f"({'; '.join(changes)}): refine the config the sweep ran with (its parent run holds "
            "it as an artifact under sweep/)"
        )


# `--out -`: the refined config goes to standard output, written to run from here (its paths
# absolute where the config refined lies elsewhere).
STDOUT = Path("-")


def refine_sweep(config: SweepConfig, out: Path | None = None) -> tuple[Path, Advice, str]:
    """Compose `config`'s follow-up config and write it to `out` (or next to `config`; to no
    file for `STDOUT`): its path, the advice and its text. Raises NoSuchSweep when the sweep has
    no trials."""
    from .errors import ConfigError, NoSuchSweep, UsageError
    from .tracking_store import TRACKING_URI_ATTR
    from .warmstart.reading import sweep_names, sweep_trials, sweep_user_attrs

    if not config.objective.names:
        raise ConfigError(
            str(config.path), "spec", "refine ranks trials by the objective, and this config has none"
        )
    trials = sweep_trials(config.optuna_storage, config.identity)
    if trials is None:
        raise NoSuchSweep(f"{config.identity}: no such sweep (nothing to refine)")
    _check_config_is_the_sweeps(config)
    advice = advise(config, trials)
    if not advice.top:
        raise NoSuchSweep(f"{config.identity}: no feasible completed trial yet (nothing to refine from)")
    stored = sweep_names(config.optuna_storage)
    to_stdout = out == STDOUT
    folder = Path.cwd() if to_stdout else out.resolve().parent if out else None
    name = follow_up_name(config, (folder,) if folder else (), stored)
    path = folder / f"{name}.yaml" if to_stdout else out or default_out(config, name)
    if path.resolve() == config.path.resolve() and not to_stdout:
        raise UsageError(f"--out {path} is the config being refined; name another file")
    if path.exists() and not to_stdout:  # maybe another sweep's config: never overwritten
        raise UsageError(f"--out {path} exists already; name another file, or remove it first")
    store = sweep_user_attrs(config.optuna_storage, config.identity).get(TRACKING_URI_ATTR)
    text = render(config, advice, path, stored, store, name)
    if not to_stdout:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
            why = f"{blocking} is a file, not a folder" if blocking else exc.strerror or exc
            raise UsageError(f"cannot write the refined config to {path}: {why}") from None
    return path, advice, text
