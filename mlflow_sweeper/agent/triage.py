"""What an attempt's failure means, beyond its exit status: the agent's side of `..triage`.

`triage` refines the outcome `classify` gave, from the run's log tail and what it logged: an
out-of-memory failure or a non-finite objective is infeasible, a usage error is a broken setup,
a missing metric is not worth another attempt. Also the trial run's extra tags that resumable
trials add.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..resume import RESUMED_FROM_TAG
from ..triage import infeasible_reason, is_nonfinite, missing_metric_reason, nonfinite_reason, usage_error
from ..trial_log import log_tail
from .outcome import Ending, Kind, Outcome

if TYPE_CHECKING:
    from ..config import SweepConfig
    from ..coordination import Work

TRIAGE_LINES = 40  # the log lines read to tell failures apart


def triage(
    outcome: Outcome,
    ending: Ending,
    log_path: Path,
    config: SweepConfig,
    metric: str | tuple[str, ...] | None,
    logged: tuple[str, ...],
    value: float | dict[str, float | None] | None = None,
) -> Outcome:
    """`outcome` as `classify` gave it, refined by what the failure says about the point; `value`:
    what the run logged for the objective, read for a run that succeeded or failed by itself."""
    if outcome.kind is Kind.COMPLETE:
        return _nonfinite(outcome, metric)
    if outcome.kind is not Kind.FAILED or ending.timed_out_after is not None:
        return outcome
    if ending.succeeded:  # the run ended well: its objective is missing or not a number
        names = metric if isinstance(metric, tuple) else (metric,) if metric else ()
        if "is NaN" in (outcome.reason or ""):
            return Outcome(Kind.INFEASIBLE, reason=f"infeasible: {outcome.reason}", run_status="FAILED")
        missing = [name for name in names if f"'{name}'" in (outcome.reason or "")]
        key = "spec.metrics" if isinstance(metric, tuple) else "spec.metric"
        reason = missing_metric_reason(missing[0], logged, key) if missing else outcome.reason
        return Outcome(Kind.FAILED, reason=reason, run_status="FAILED", retry=False)
    tail = log_tail(log_path, TRIAGE_LINES, output_only=True)  # not the command line: it names the parameters
    refused = usage_error(tail, ending.exit_code)
    if refused:
        return Outcome(Kind.SETUP, reason=refused, run_status="FAILED", retry=False)
    infeasible = infeasible_reason(tail, config.infeasible_when)
    if infeasible:
        return Outcome(Kind.INFEASIBLE, reason=infeasible, run_status="FAILED", retry=False)
    return _nonfinite(outcome, metric, _logged_values(metric, value))  # a NaN loss aborted the run


def _logged_values(
    metric: str | tuple[str, ...] | None, value: float | dict[str, float | None] | None
) -> list:
    """The objective's values a run logged, in the order of its metrics (None where it logged none)."""
    if isinstance(value, dict):
        return [value.get(name) for name in metric] if isinstance(metric, tuple) else []
    return [value]


def _nonfinite(outcome: Outcome, metric: str | tuple[str, ...] | None, values: list | None = None) -> Outcome:
    """A trial whose objective is NaN or infinite is infeasible: a completed one's values (NaN is
    caught by `classify`), or `values`, what a failed run logged."""
    if values is None:
        values = outcome.value if isinstance(outcome.value, list) else [outcome.value]
    names = metric if isinstance(metric, tuple) else (metric,)
    for name, value in zip(names, values, strict=False):
        if value is not None and is_nonfinite(value):
            return Outcome(
                Kind.INFEASIBLE, reason=nonfinite_reason(str(name), value), run_status="FAILED", retry=False
            )
    return outcome


def trial_tags(work: Work) -> dict[str, str]:
    """Tags of a trial run besides the usual ones: the earlier attempt it may resume from."""
    return {RESUMED_FROM_TAG: work.replaces_run} if work.replaces_run else {}
