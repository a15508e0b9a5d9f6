"""The agent's stop signal: set by Ctrl-C or SIGTERM, read by every worker and trial.

It also knows the trials' local processes, so that a second Ctrl-C can kill them at once, and
whether workers are running, since only then is there anything to cancel cleanly."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..launch import kill_tree
from ..storages.retry import stop_waiting_out_outages


class StopSignal:
    def __init__(self) -> None:
        stop_waiting_out_outages(False)
        self._event = threading.Event()
        self._pids: set[int] = set()
        self._lock = threading.Lock()  # guards _pids
        self._on_quit: list[Callable[[], None]] = []
        self.set_at: float | None = None  # time.monotonic() when the agent was told to stop
        self.workers_active = False  # set while workers run: Ctrl-C then cancels them cleanly

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        if self.set_at is None:
            self.set_at = time.monotonic()
        stop_waiting_out_outages()
        self._event.set()

    def set_within(self, seconds: float) -> bool:
        """Was the agent told to stop less than `seconds` ago?"""
        return self.set_at is not None and time.monotonic() - self.set_at < seconds

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the agent is stopping."""
        return self._event.wait(seconds)

    @property
    def event(self) -> threading.Event:
        return self._event

    def track(self, pid: int | None) -> None:
        """A trial's local process tree, to kill on a second Ctrl-C."""
        if pid is not None:
            with self._lock:
                self._pids.add(pid)

    def untrack(self, pid: int | None) -> None:
        with self._lock:
            self._pids.discard(pid)  # type: ignore[arg-type]

    def on_quit(self, note: Callable[[], None]) -> None:
        """What to write before quitting at once (a second Ctrl-C): kept short, one try."""
        self._on_quit.append(note)

    def kill_trials(self) -> None:
        """Kill every tracked trial's process tree at once (a second Ctrl-C), after noting it."""
        for note in list(self._on_quit):
            with contextlib.suppress(Exception):  # quitting goes on
                note()
        with self._lock:
            pids = list(self._pids)
        for pid in pids:
            kill_tree(pid, grace=0)

    @contextmanager
    def workers_running(self) -> Iterator[None]:
        self.workers_active = True
        try:
            yield
        finally:
            self.workers_active = False


class StartBudget:
    """`--count`: how many trials this agent may start, across all its sweeps; None: no limit."""

    def __init__(self, count: int | None = None):
        self.count = count
        self.started = 0
        self._lock = threading.Lock()

    def reserve(self) -> bool:
        """Count a trial against `--count`; False once this agent has started enough."""
        with self._lock:
            if self.count is not None and self.started >= self.count:
                return False
            self.started += 1
            return True

    def release(self) -> None:
        """A reserved start that found no trial to run."""
        with self._lock:
            self.started -= 1

    def used_up(self) -> bool:
        return self.count is not None and self.started >= self.count
