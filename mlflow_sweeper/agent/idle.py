"""An idle agent's polling: one check at a time per agent, with exponential backoff.

A worker with nothing to claim while other agents' trials run must look again later (a failed
point is re-queued, a budget raised, the sweep ends). Each look costs the storage a few queries
(a claim attempt, "every slot claimed?", "anything active?"). Idle workers take turns: one
sleeps and looks while the others wait behind it in the process, so an agent looks once per
delay however many workers it has. The delay doubles from FIRST_SECONDS to LONGEST_SECONDS
and starts again at FIRST_SECONDS as soon as this agent finds work.
"""

from __future__ import annotations

import threading
import time

FIRST_SECONDS = 0.5
LONGEST_SECONDS = 10.0
QUERIES_PER_LOOK = 4  # claim (a parked claim, a WAITING point), slots exhausted, active trials


class IdleBackoff:
    def __init__(self, first: float = FIRST_SECONDS, longest: float = LONGEST_SECONDS):
        self.first = first
        self.longest = longest
        self.delay = first
        self.turn = threading.Lock()  # held by the one idle worker sleeping before its next look
        self.looks = 0  # how many times an idle worker waited for its turn to look
        self._poked = threading.Event()

    def next_delay(self) -> float:
        delay = self.delay
        self.delay = min(self.longest, delay * 2)
        return delay

    def reset(self) -> None:
        """Work was found: look often again."""
        self.delay = self.first

    def poke(self) -> None:
        """Something changed here (a dead agent's trial settled by this agent): look again now."""
        self.reset()
        self._poked.set()

    def wait(self, stop: threading.Event) -> bool:
        """Wait for this worker's next look (sooner when poked); True when the agent is stopping."""
        while not self.turn.acquire(timeout=FIRST_SECONDS):
            if stop.is_set():
                return True
        try:
            self.looks += 1
            deadline = time.monotonic() + self.next_delay()
            while (left := deadline - time.monotonic()) > 0:
                if stop.wait(min(left, FIRST_SECONDS)):
                    return True
                if self._poked.is_set():
                    self._poked.clear()
                    break
            return stop.is_set()
        finally:
            self.turn.release()
