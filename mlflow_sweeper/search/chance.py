"""Does a parameter tell better trials from worse ones? `refine` fixes one that does not.

An importance alone cannot say "next to none" on a few dozen trials: a random forest fitted to 30
trials splits on a parameter that does nothing to fit what it cannot explain yet, and gives it 5 to
15 % of the importance, as much as a weak parameter that matters. So each parameter is also tested:
the trials are grouped by its value (by its choices, or its range's quarters) and a Kruskal-Wallis
test asks whether the objective's ranks differ between the groups. It needs no model, so it is
not fooled by what a forest overfits, and it costs next to nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial

NO_DIFFERENCE = 0.2  # a p-value above this: the groups' ranks do not differ
PER_PARAMETER = 8  # trials per parameter tested before the test can tell (6-D, 30 trials: it cannot)
QUARTERS = 4  # a number taking more than MOST_VALUES values is grouped by this many quantiles
MOST_VALUES = 6


def no_more_than_chance(
    trials: Sequence[FrozenTrial], names: Sequence[str], value: Callable[[FrozenTrial], float]
) -> dict[str, float]:
    """The parameters among `names` whose values do not tell better trials from worse, each with
    its test's p-value; {} with too few trials (those that have every one of `names`) to tell."""
    usable = [t for t in trials if all(n in t.params for n in names)]
    if len(names) < 2 or len(usable) < PER_PARAMETER * len(names):
        return {}
    from scipy.stats import kruskal, rankdata

    ranks = rankdata([value(t) for t in usable])
    found = {}
    for name in names:
        labels = _groups(usable, name)
        groups = [ranks[labels == label] for label in np.unique(labels)]
        if len(groups) < 2:
            continue  # one value in every trial: nothing to tell (the range keeps it)
        with np.errstate(all="ignore"):
            p = float(kruskal(*groups).pvalue) if np.ptp(ranks) > 0 else 1.0
        if math.isnan(p) or p > NO_DIFFERENCE:
            found[name] = 1.0 if math.isnan(p) else p
    return found


def _groups(trials: Sequence[FrozenTrial], name: str) -> np.ndarray:
    """Each trial's group for `name`: its choice, its value where there are few, or else the
    quantile of the range its value falls in (a log range's by its logarithm, the same order)."""
    values = [t.params[name] for t in trials]
    distinct = list(dict.fromkeys(repr(v) for v in values))
    if isinstance(trials[0].distributions.get(name), CategoricalDistribution) or len(distinct) <= MOST_VALUES:
        return np.array([distinct.index(repr(v)) for v in values])
    order = np.argsort(np.array(values, dtype=float), kind="stable")
    labels = np.empty(len(values), dtype=int)
    labels[order] = np.arange(len(values)) * QUARTERS // len(values)
    return labels
