"""Telling failures apart from the last lines of a failed trial's log: pure functions.

A retry helps only a failure that might not happen again. A point that runs out of memory will
do so again (it is infeasible: a result, not a breakdown), and a script that refuses its
arguments, or never logs the objective's metric, fails every trial alike until the user fixes
the setup. Each of these says so at once instead of burning `max_retries` attempts.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import ConfigProblem
from .hints import did_you_mean

DEFAULT_INFEASIBLE = [
    "CUDA out of memory",
    "OutOfMemoryError",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "RESOURCE_EXHAUSTED",
    "out of memory",
    "MemoryError",
]

INFEASIBLE_TAG = "sweeper.infeasible"  # on a trial run: why its point is infeasible


def load_patterns(where: Any, key: str, value: Any) -> tuple[str, ...]:
    """`infeasible_when`: a list of regular expressions (`[]` turns the check off)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ConfigProblem(key, f"expected a list of regular expressions, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigProblem(key, f"expected a non-empty regular expression, got {item!r}")
        try:
            re.compile(item)
        except re.error as exc:
            raise ConfigProblem(key, f"{item!r} is not a valid regular expression: {exc}") from None
    return tuple(value)


def infeasible_reason(tail: str, patterns: Sequence[str]) -> str | None:
    """The first log line (from the end) that an `infeasible_when` pattern matches, or None."""
    if not patterns or not tail:
        return None
    compiled = [re.compile(p) for p in patterns]
    for line in reversed(tail.splitlines()):
        for pattern in compiled:
            if pattern.search(line):
                return f"infeasible: {line.strip()[:300]}"
    return None


def is_nonfinite(value: float) -> bool:
    """NaN or infinite, as a trial logged it: MLflow's SQL stores keep an infinity as the largest
    float, which no real objective reaches."""
    return not math.isfinite(value) or abs(value) >= sys.float_info.max


def nonfinite_reason(metric: str, value: float) -> str:
    shown = "NaN" if value != value else ("inf" if value > 0 else "-inf")
    return f"infeasible: the metric '{metric}' is {shown}"


_UNRECOGNIZED = re.compile(r"error: unrecognized arguments?: (.+)$")
_BAD_ARGUMENT = re.compile(r"error: argument ([^:]+): (.+)$")
_REQUIRED = re.compile(r"error: (the following arguments are required: .+)$")
_OPTION = re.compile(r"(?:Error|error): (?:No such option|no such option): (\S+)")
_GENERIC = re.compile(r"error: (.+)$")


def usage_error(tail: str, exit_code: int | None) -> str | None:
    """What the trial's script refused, when its log ends in a usage error (argparse, click):
    the setup is broken, and every trial would fail alike. None otherwise."""
    lines = tail.splitlines()
    usage = any(line.lstrip().lower().startswith("usage:") for line in lines)
    for line in reversed(lines):
        text = line.strip()
        for pattern, says in (
            (_UNRECOGNIZED, "the training script does not accept {0} (unrecognized arguments)"),
            (_BAD_ARGUMENT, "the training script refused the parameter {0}: {1}"),
            (_REQUIRED, "the training script says: {0}"),
            (_OPTION, "the training script does not accept {0}"),
        ):
            match = pattern.search(text)
            if match and (usage or pattern is _OPTION):
                return says.format(*match.groups())
        if usage and exit_code == 2:
            match = _GENERIC.search(text)
            if match:
                return f"the training script refused its arguments: {match.group(1)}"
    return None


def missing_metric_reason(
    metric: str, logged: Iterable[str], key: str = "spec.metric", what: str = "the metric"
) -> str:
    """The run ended well but never logged the objective (or, `what` says, a constraint's metric,
    named under `key`): name what it logged and a near name."""
    names = sorted(set(logged))
    if not names:
        return (
            f"the run did not log {what} '{metric}' (it logged no metric at all); "
            f"log it with mlflow.log_metric or fix {key}"
        )
    shown = ", ".join(f"'{n}'" for n in names[:10]) + (", ..." if len(names) > 10 else "")
    return (
        f"the run did not log {what} '{metric}'{did_you_mean(metric, names)}; "
        f"it logged {shown}: fix {key} or the training code"
    )
