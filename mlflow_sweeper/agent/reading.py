"""What a trial's run says once its process has ended: the objective read, the outcome classified
and triaged, the constraints judged.

One part for the trial that ran here (`TrialExecution`) and for the trial of a dead agent whose
trial ran on and ended (`orphans.py`, from its recorded exit status): one rule for what a
result is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import SweepConfig
from ..constraints import Judgement, judge, metric_names
from ..record import Recorder, RunReading
from ..triage import missing_metric_reason
from .outcome import Ending, Kind, Outcome, classify, needs_metric
from .triage import triage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """A trial's outcome, with what settling it needs of the run's reading."""

    outcome: Outcome
    ended_as: str | None = None  # how the training code ended the run, once read
    judgement: Judgement | None = None  # the constraints' verdict, with `spec.constraints`


class ResultReader:
    """Reads one sweep's trial runs: one read of a run, however many objectives and constraints."""

    def __init__(self, config: SweepConfig, recorder: Recorder):
        self.config = config
        self.recorder = recorder

    @property
    def objective_names(self) -> str | tuple[str, ...] | None:
        """The objective's metric, or the tuple of them with several objectives."""
        objective = self.config.objective
        return objective.names if objective.multi else objective.metric

    @property
    def constraint_metrics(self) -> tuple[str, ...]:
        return metric_names(self.config.objective.constraints)

    def verdict(self, ending: Ending, run_id: str | None, log_path: Path) -> Verdict:
        """The outcome of an attempt that ended as `ending`. The run is read only for a trial that
        ended by itself (its objective, its constraints' metrics, how its code ended it)."""
        needed = needs_metric(ending, self.objective_names) and run_id
        return self._verdict(ending, self._read(run_id, ending) if needed else None, log_path)

    def _read(self, run_id: str, ending: Ending) -> RunReading | None:
        """The run's objective and constraint metrics; for a run that failed, None when it cannot
        be read (the tracking server it failed on may be down): it is a failure all the same."""
        names = self.objective_names
        objectives = names if isinstance(names, tuple) else (names,) if names else ()
        try:
            return self.recorder.read_run(run_id, (*objectives, *self.constraint_metrics))
        except Exception:
            if ending.succeeded:
                raise
            log.debug("could not read failed run %s", run_id, exc_info=True)
            return None

    def _verdict(self, ending: Ending, reading: RunReading | None, log_path: Path) -> Verdict:
        names = self.objective_names
        metrics = reading.metrics if reading is not None else {}
        value: float | dict[str, float | None] | None = None
        if reading is not None and names:
            value = metrics if isinstance(names, tuple) else metrics[names]
        logged = reading.logged if reading is not None else ()
        outcome = triage(classify(ending, names, value), ending, log_path, self.config, names, logged, value)
        ended_as = reading.ended_as if reading is not None else None
        return self._judged(Verdict(outcome, ended_as), metrics, logged)

    def _judged(self, verdict: Verdict, metrics: dict[str, float | None], logged: tuple[str, ...]) -> Verdict:
        """A complete trial with `spec.constraints`: its constraint values (stored with it when it
        completes), or, when the run lacks a constraint's metric, a failure as for a missing
        objective: not retried (another attempt would not log it either)."""
        constraints = self.config.objective.constraints
        if not constraints or not verdict.outcome.complete:
            return verdict
        judgement = judge(constraints, metrics)
        if judgement.missing:
            absent = [name for name in judgement.missing if name not in logged]  # a typo comes first
            name = (absent or judgement.missing)[0]
            if not absent:  # logged, as NaN: infeasible, as a NaN objective is
                why = f"infeasible: the constraint metric '{name}' is NaN"
                return Verdict(
                    Outcome(Kind.INFEASIBLE, reason=why, run_status="FAILED", retry=False), verdict.ended_as
                )
            why = missing_metric_reason(name, logged, "spec.constraints", "the constraint metric")
            failed = Outcome(Kind.FAILED, reason=why, run_status="FAILED", retry=False)
            return Verdict(failed, verdict.ended_as, judgement)
        return Verdict(verdict.outcome, verdict.ended_as, judgement)
