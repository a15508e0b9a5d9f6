"""Closing a sweep: small actions run once, by the one agent the study elects.

Adding a close action is one class with `run(context)` and one line in `CLOSE_ACTIONS`. Every
action must tolerate running again after a crash of the closer (the election may be re-run).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from ..config import SweepConfig
from ..coordination import RUN_ATTR, SweepStudy
from ..coordination.target import STOPPED_BY_TARGET
from ..record import Recorder
from ..ui.closing import describe_closed_sweep
from ..ui.register import register_best


@dataclass(frozen=True)
class CloseContext:
    """What a close action may use: the finished sweep, its trials and its parent run."""

    config: SweepConfig
    study: SweepStudy
    recorder: Recorder
    parent_id: str
    trials: list[FrozenTrial]
    best: FrozenTrial | None


class CloseAction:
    def run(self, context: CloseContext) -> None:
        raise NotImplementedError


class RecordBest(CloseAction):
    """The best trial's value and run id on the parent, whatever the parent showed before."""

    def run(self, context: CloseContext) -> None:
        record_sweep_best(context.recorder, context.parent_id, context.trials, context.best)


def record_sweep_best(
    recorder: Recorder, parent_id: str, trials: list[FrozenTrial], best: FrozenTrial | None
) -> None:
    """Point the parent at the sweep's best trial, whatever it showed before: the close's word,
    and what an agent whose new best landed once a close had begun puts back."""
    if best is not None and best.user_attrs.get(RUN_ATTR):
        ended = sum(t.state.is_finished() for t in trials)
        recorder.parent.record_best(parent_id, best.user_attrs[RUN_ATTR], best.value, step=ended, force=True)


class WriteReport(CloseAction):
    """The sweep report under `report/` on the parent, and `importance/<param>` metrics.

    A report never fails a sweep: every error is logged and the close goes on."""

    def run(self, context: CloseContext) -> None:
        from ..report import publish_report

        publish_report(context.config, context.trials, context.recorder.client, context.parent_id)


class RecordPareto(CloseAction):
    """Several objectives: `sweeper.pareto` on the front's runs, their ids on the parent."""

    def run(self, context: CloseContext) -> None:
        if not context.config.objective.multi:
            return
        from ..coordination.identity import directions_of
        from ..coordination.tallies import own_run_id, pareto_front

        front = pareto_front(context.trials, directions_of(context.config))
        run_ids = [t.user_attrs[RUN_ATTR] for t in front if t.user_attrs.get(RUN_ATTR)]
        own = [run_id for run_id in map(own_run_id, front) if run_id]
        context.recorder.parent.record_pareto(context.parent_id, run_ids, own)


class RecordAlgorithmMetrics(CloseAction):
    """The metrics the sweep's algorithm gives for the whole sweep, on the parent (a sensitivity
    sweep's `sensitivity/<param>`); most algorithms give none."""

    def run(self, context: CloseContext) -> None:
        metrics = context.study.source.strategy.close_metrics(context.trials)
        if metrics:
            context.recorder.parent.record_metrics(context.parent_id, metrics)


class RecordStopped(CloseAction):
    """A sweep that stopped because a trial reached `spec.target`: `sweeper.stopped=target`; one
    that ran its budget since (its target raised) loses the tag."""

    def run(self, context: CloseContext) -> None:
        if context.study.target_reached():
            context.recorder.parent.record_stopped(context.parent_id, STOPPED_BY_TARGET)
        elif context.config.objective.target is not None:  # only a sweep with a target has stopped so
            context.recorder.parent.clear_stopped(context.parent_id)


class RegisterModel(CloseAction):
    """`register:`: the best trial's model a new version in the Model Registry, once."""

    def run(self, context: CloseContext) -> None:
        if context.config.register is None:
            return
        recorder = context.recorder
        register_best(
            recorder.client, context.config, recorder.experiment_id, context.parent_id, context.best
        )


class DescribeSweep(CloseAction):
    """The parent's description as the sweep ends: best, top trials, importances, report."""

    def run(self, context: CloseContext) -> None:
        describe_closed_sweep(context.config, context.study, context.recorder, context.parent_id)


class FinishParent(CloseAction):
    """The parent run FINISHED: the last thing, so a FINISHED parent shows a closed sweep."""

    def run(self, context: CloseContext) -> None:
        context.recorder.parent.set_status(context.parent_id, finished=True)


CLOSE_ACTIONS: list[CloseAction] = [
    RecordBest(),
    RecordPareto(),
    RecordAlgorithmMetrics(),
    RecordStopped(),
    WriteReport(),
    RegisterModel(),
    DescribeSweep(),
    FinishParent(),
]


def close_sweep(context: CloseContext, actions: list[CloseAction] | None = None) -> bool:
    """Run the close actions if the study elects this agent; True when this agent closed it."""
    if not context.study.elect_closer():
        return False
    try:
        for action in CLOSE_ACTIONS if actions is None else actions:
            action.run(context)
    except BaseException as exc:  # Ctrl-C too: the close is left to the next election, whole
        with contextlib.suppress(Exception):  # the storage failing as well: the token goes stale
            context.study.give_up_close(f"{type(exc).__name__}: {exc}")
        raise
    context.study.mark_closed()
    return True
