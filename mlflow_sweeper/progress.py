"""What a person watching a sweep sees: a live line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("mlflow_sweeper")


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class SweepProgress:
    """Counts for one sweep; `done`/`failed` start from the stored sweep so resumes read right."""

    name: str
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    best: float | None = None
    direction: str = "minimize"
    started: float = field(default_factory=time.monotonic)
    done_here: int = 0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        text = f"{self.name}: {self.done}/{self.total} done, {self.running} running, {self.failed} failed"
        if self.best is not None:
            text += f", best {self.best:.6g}"
        text += f", {_duration(elapsed)} elapsed"
        left = self.total - self.done - self.failed
        if self.done_here and left > 0:
            text += f", ETA {_duration(elapsed / self.done_here * left)}"
        return text

    def offer_best(self, value: float | None) -> bool:
        """Keep `value` if it beats the best this agent knows of; True when it does."""
        if value is None:
            return False
        if self.best is None or (value > self.best if self.direction == "maximize" else value < self.best):
            self.best = value
            return True
        return False


class Reporter:
    """Prints trial events; on a terminal also redraws one live status line."""

    def __init__(self, stream=None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.current: SweepProgress | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, progress: SweepProgress) -> None:
        self.current = progress
        if self.live and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._redraw_loop, daemon=True, name="progress")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self.live and self.current is not None:
            with self._lock:
                self.stream.write("\r\033[K" + self.current.line() + "\n")
                self.stream.flush()

    def event(self, message: str) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K" + message + "\n")
                if self.current is not None:
                    self.stream.write(self.current.line())
                self.stream.flush()
            else:
                log.info(message)

    def _redraw_loop(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self.current is not None:
                    self.stream.write("\r\033[K" + self.current.line())
                    self.stream.flush()
