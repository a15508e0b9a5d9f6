"""How a trial ended, decided by one pure function from what the await step observed.

Kept free of storages and processes so every branch can be tested directly, and so a new kind
of ending (a pruned trial) is one more `Kind` and one more branch here.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from enum import Enum

from ..coordination.tallies import INTERRUPTED_PREFIX

# The reason of a point given back unstarted because its agent stopped (fail_fast, an error)
# after claiming it: "interrupted", so that, like a Ctrl-C, it counts for nothing.
NOT_STARTED = f"{INTERRUPTED_PREFIX} before it started: its agent stopped"


class Kind(Enum):
    COMPLETE = "complete"  # told to Optuna with its value; run FINISHED
    FAILED = "failed"  # counts an attempt and is retried while attempts are left
    CANCELLED = "cancelled"  # Ctrl-C: run KILLED, the point re-queued without counting an attempt
    PRUNED = "pruned"  # stopped by the pruner: run KILLED, Optuna PRUNED, never retried
    # The point cannot run (out of memory, a NaN objective): a result, not a breakdown. Run FAILED
    # and tagged, Optuna FAIL, never retried, and not a failure for the agent's exit code.
    INFEASIBLE = "infeasible"
    # The setup is broken (the script refuses its arguments): every trial would fail alike, so
    # the sweep stops as `fail_fast` stops it, resumable once the setup is fixed.
    SETUP = "setup"


@dataclass(frozen=True)
class Ending:
    """What the await step saw: the process or backend status, or why waiting stopped."""

    succeeded: bool | None = None  # None when the trial did not end by itself
    exit_code: int | None = None
    timed_out_after: float | None = None  # seconds, when `trial_timeout` ended it
    cancelled: bool = False
    pruned: bool = False  # the pruner stopped it (`early_stopping`)


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    value: float | list[float] | None = None  # a list with several objectives, in their order
    reason: str | None = None
    run_status: str = "FINISHED"  # how the trial's MLflow run ends
    retry: bool = True  # a failure another attempt may cure (False: the run says it would not)

    @property
    def complete(self) -> bool:
        return self.kind is Kind.COMPLETE

    @property
    def infeasible_why(self) -> str:
        """An infeasible outcome's reason as the run's tag and the trial's attr name it: what
        makes the point unable to run, without the word `infeasible` the reason starts with."""
        return (self.reason or "infeasible").removeprefix("infeasible: ")


def needs_metric(ending: Ending, metric: str | tuple[str, ...] | None) -> bool:
    """Whether the settle step must read the objective from the run before classifying: the run
    succeeded, or failed by itself (a NaN or infinite objective makes its point infeasible)."""
    return bool(metric) and (bool(ending.succeeded) or failed_by_itself(ending))


def failed_by_itself(ending: Ending) -> bool:
    """The trial's code ended with an error: not stopped by the agent, the pruner or a timeout,
    nor killed by a signal (the OOM killer, a scheduler), whatever it had logged by then."""
    stopped = ending.cancelled or ending.pruned or ending.timed_out_after
    by_a_signal = ending.exit_code is not None and ending.exit_code < 0
    return ending.succeeded is False and not stopped and not by_a_signal


def failed_reason(code: int | None) -> str:
    """`the run failed (exit code 1)`; a death by a signal named: `(killed by SIGSEGV, exit code -11)`."""
    if code is None:
        return "the run failed"
    if code < 0:
        try:
            return f"the run failed (killed by {signal.Signals(-code).name}, exit code {code})"
        except ValueError:
            pass
    return f"the run failed (exit code {code})"


def classify(
    ending: Ending,
    metric: str | tuple[str, ...] | None,
    value: float | dict[str, float | None] | None,
) -> Outcome:
    """The outcome of a trial. `metric` is the objective's name (None: no objective, the exit
    status decides), or a tuple of names with several objectives; `value` is what the run
    logged for it (None: nothing logged or not read), or a mapping name -> value for several."""
    if ending.cancelled:
        return Outcome(Kind.CANCELLED, reason="interrupted (Ctrl-C or SIGTERM)", run_status="KILLED")
    if ending.pruned:
        return Outcome(Kind.PRUNED, reason="stopped early by the pruner", run_status="KILLED")
    if ending.timed_out_after is not None:
        reason = f"timed out after {ending.timed_out_after:g} s (trial_timeout)"
        return Outcome(Kind.FAILED, reason=reason, run_status="KILLED")
    if not ending.succeeded:
        return Outcome(Kind.FAILED, reason=failed_reason(ending.exit_code), run_status="FAILED")
    if not metric:
        return Outcome(Kind.COMPLETE)
    if isinstance(metric, tuple):
        return _classify_values(metric, value if isinstance(value, dict) else {})
    if value is None:
        return Outcome(Kind.FAILED, reason=f"the run did not log the metric '{metric}'", run_status="FAILED")
    if math.isnan(value):
        return Outcome(Kind.FAILED, reason=f"the metric '{metric}' is NaN", run_status="FAILED")
    return Outcome(Kind.COMPLETE, value=value)


def _classify_values(metrics: tuple[str, ...], values: dict[str, float | None]) -> Outcome:
    """Several objectives: complete only when every metric has a number."""
    missing = [name for name in metrics if values.get(name) is None]
    if missing:
        listed = ", ".join(f"'{name}'" for name in missing)
        return Outcome(Kind.FAILED, reason=f"the run did not log the metric {listed}", run_status="FAILED")
    nan = [name for name in metrics if math.isnan(values[name])]  # type: ignore[arg-type]
    if nan:
        return Outcome(Kind.FAILED, reason=f"the metric '{nan[0]}' is NaN", run_status="FAILED")
    return Outcome(Kind.COMPLETE, value=[float(values[name]) for name in metrics])  # type: ignore[arg-type]
