"""What the progress bar counts: this agent's trials as they settle, every agent's from the storage.

The bar shows the whole sweep, not this agent's share of it, and its ETA the whole sweep's rate.
This agent's own trials are counted the moment they settle; every few seconds (`sync`) the counts
are read again from the storage, which holds every agent's.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..coordination.tallies import Progress
    from ..progress import SweepProgress


class SweepCounts:
    """The counts behind one agent's bar. Thread-safe: workers settle trials while the
    maintenance thread syncs."""

    def __init__(self, progress: SweepProgress, single_objective: bool):
        self.progress = progress
        self.single_objective = single_objective  # only then is there a best value to show
        self.lock = threading.Lock()
        self._running_here = 0
        self._claiming = 0  # this agent's workers claiming: a trial claimed is RUNNING in storage
        self._running_elsewhere = 0  # other agents' running trials, at the last sync
        self._settled = {"done": 0, "pruned": 0, "failed": 0}  # this agent's, ever

    def running_here(self, count: int, claimed: bool = False) -> None:
        """This agent now runs `count` trials (`claimed`: one more, whose claim just ended)."""
        with self.lock:
            self._running_here = count
            if claimed:
                self._claiming -= 1
            self.progress.running = count + self._running_elsewhere

    def claiming(self, change: int) -> None:
        """A worker starts (+1) or ends (-1) a claim: until its trial counts as running here, the
        storage shows it running, and a sync meanwhile must not take it for another agent's."""
        with self.lock:
            self._claiming += change

    def done(self, value: float | None) -> bool:
        """Count a complete trial; True when its value beats the best this agent knows of."""
        with self.lock:
            self._settled["done"] += 1
            self.progress.done += 1
            self.progress.done_here += 1
            return self.progress.offer_best(value)

    def failed(self) -> None:
        """Count a trial that failed for good."""
        with self.lock:
            self._settled["failed"] += 1
            self.progress.failed += 1

    def pruned(self) -> None:
        with self.lock:
            self._settled["pruned"] += 1
            self.progress.pruned += 1

    def failed_again_owed(self, count: int) -> None:
        """`count` points that had failed for good are queued again: no longer failed."""
        with self.lock:
            self.progress.failed = max(0, self.progress.failed - count)

    def sync(self, read_tallies: Callable[[], Progress]) -> None:
        """Every agent's counts, read from the storage by `read_tallies`. Trials this agent settled
        while the storage was being read are added, so no count steps back."""
        with self.lock:
            before = dict(self._settled)
            own_before = self._running_here + self._claiming
        tallies = read_tallies()
        with self.lock:
            during = {kind: count - before[kind] for kind, count in self._settled.items()}
            own = max(own_before, self._running_here + self._claiming)  # own trials started meanwhile
            progress = self.progress
            progress.done = tallies.complete + during["done"]
            progress.pruned = tallies.pruned + during["pruned"]
            progress.failed = tallies.failed_for_good + during["failed"]
            self._running_elsewhere = max(0, tallies.running - own)
            progress.running = self._running_here + self._running_elsewhere
            if tallies.best is not None and self.single_objective:
                progress.offer_best(tallies.best.value)
