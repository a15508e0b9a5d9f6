"""Does a parameter tell better trials from worse ones? `refine` fixes one that does not.

An importance alone cannot say "next to none" on a few dozen trials: a random forest fitted to 30
trials splits on a parameter that does nothing to fit what it cannot explain yet, and gives it 5 to
15 % of the importance, as much as a weak parameter that matters. So each parameter is also tested:
the trials are grouped by its value (by its choices, or its range's quarters) and a Kruskal-Wallis
test asks whether the objective's ranks differ between the groups. It needs no model, so it is
not fooled by what a forest overfits, and it costs next to nothing. It also speaks the other way:
beside one parameter with a wide effect a forest leaves the others under 2 % of the importance,
and a parameter whose groups' ranks clearly differ is not one to fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial

NO_DIFFERENCE = 0.2  # a p-value above this: the groups' ranks do not differ
DIFFERENCE = 0.05  # a p-value below this: they do, whatever a forest's importance says
PER_PARAMETER = 8  # trials per parameter tested before "no difference" tells (6-D, 30 trials: not)
FEWEST = 8  # trials before any test
QUARTERS = 4  # a number taking more than MOST_VALUES values is grouped by this many quantiles
MOST_VALUES = 6


@dataclass(frozen=True)
class RankTests:
    """Each tested parameter's p-value; `conclusive`: trials enough per parameter for a high
    p-value to say the parameter makes no difference (a low one says it does on fewer)."""

    p: dict[str, float]
    conclusive: bool

    def no_difference(self, name: str) -> bool:
        return self.conclusive and self.p.get(name, 0.0) > NO_DIFFERENCE

    def difference(self, name: str) -> bool:
        return self.p.get(name, 1.0) < DIFFERENCE


def rank_tests(
    trials: Sequence[FrozenTrial], names: Sequence[str], value: Callable[[FrozenTrial], float]
) -> RankTests:
    """Whether each of `names` tells better trials from worse, over the trials that have them all."""
    usable = [t for t in trials if all(n in t.params for n in names)]
    if len(usable) < FEWEST:
        return RankTests({}, conclusive=False)
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
        found[name] = 1.0 if math.isnan(p) else p
    return RankTests(found, conclusive=len(names) >= 2 and len(usable) >= PER_PARAMETER * len(names))


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
