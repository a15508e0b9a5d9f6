"""What a person watching a sweep sees: a live bar on a terminal, plain timestamped lines otherwise.

On a terminal, `rich` draws one bar per sweep and prints event lines above it, so the bar never
garbles them; log records of the `mlflow_sweeper` logger are routed the same way while the bar
is shown. Piped, every event is a plain log line (the CLI's log format carries the timestamp).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field

from .display import shown_value
from .secrets import redact

log = logging.getLogger("mlflow_sweeper")

REFRESH_PER_SECOND = 2
ETA_SMOOTHING = 0.3  # weight of a fresh estimate in the finish time shown; the rest is the old one
TIME_FORMAT = "%H:%M:%S"  # the CLI's log format uses the same, so both kinds of line read alike


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


BAR_WIDTHS = (24, 10, 0)  # the bar's widths, tried in turn until the line fits the terminal


def fit_bar(progress: SweepProgress, width: int) -> tuple[str, int, str]:
    """(name, bar width, text) of the live line, fitted to a terminal `width` columns wide: the
    full text with a bar, a narrower one, then the short text (zero counts left out) with a bar,
    a narrower one, none; the name is cut last."""
    full, short = progress.status_text(short=False), progress.status_text(short=True)
    tries = [(full, bar) for bar in BAR_WIDTHS[:-1]] + [(short, bar) for bar in BAR_WIDTHS]
    for text, bar in tries:
        used = len(progress.name) + len(text) + (bar + 2 if bar else 1)
        if used <= width:
            return progress.name, bar, text
    text = short
    room = max(8, width - len(text) - 2)
    name = progress.name if len(progress.name) <= room else progress.name[: room - 1] + "…"
    return name, 0, text


@dataclass
class SweepProgress:
    """Counts for one sweep; `done`/`failed`/`pruned` start from the stored sweep so resumes read right."""

    name: str
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    best: float | None = None
    direction: str = "minimize"
    started: float = field(default_factory=time.monotonic)
    done_here: int = 0
    pruned: int = 0

    def __post_init__(self) -> None:
        self._ended_at_start = self.ended
        self._seen_ended = self.ended
        self._finish_at: float | None = None

    @property
    def ended(self) -> int:
        return self.done + self.failed + self.pruned

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the rate at which trials ended since this agent started.

        The estimate is revised only when a trial ends, and then blended with the previous one;
        in between it counts down, so it never jumps while trials are running.
        """
        now = time.monotonic() if now is None else now
        ended = self.ended
        left = self.total - ended
        if left <= 0:
            return None
        ended_here = ended - self._ended_at_start
        if ended != self._seen_ended:
            self._seen_ended = ended
            if ended_here > 0:
                fresh = now + (now - self.started) / ended_here * left
                if self._finish_at is None:
                    self._finish_at = fresh
                else:
                    self._finish_at += ETA_SMOOTHING * (fresh - self._finish_at)
        if self._finish_at is None:
            return None
        return max(0.0, self._finish_at - now)

    def counts(self) -> str:
        return (
            f"{self.ended}/{self.total} done, {self.running} running, {self.failed} failed, "
            f"{self.pruned} pruned"
        )

    def status_text(self, short: bool = False) -> str:
        """The counts, best, elapsed time and ETA; `short` leaves out what is zero."""
        if short:
            parts = [f"{self.ended}/{self.total} done"] + [
                f"{count} {what}"
                for count, what in (
                    (self.running, "running"),
                    (self.failed, "failed"),
                    (self.pruned, "pruned"),
                )
                if count
            ]
            text = ", ".join(parts)
        else:
            text = self.counts()
        if self.best is not None:
            text += f", best {shown_value(float(self.best))}"
        eta = self.eta()
        if short:
            return text + f", {_duration(self.elapsed)}, ETA {_duration(eta) if eta is not None else '-'}"
        text += f", {_duration(self.elapsed)} elapsed"
        return text + (f", ETA {_duration(eta)}" if eta is not None else ", ETA -")

    def line(self) -> str:
        """The progress as one plain line (piped output and the final state)."""
        return f"{self.name}: {self.status_text()}"

    def offer_best(self, value: float | None) -> bool:
        """Keep `value` if it beats the best this agent knows of; True when it does."""
        if value is None:
            return False
        if self.best is None or (value > self.best if self.direction == "maximize" else value < self.best):
            self.best = value
            return True
        return False


class Reporter:
    """Prints trial events; on a terminal also shows a live bar for the sweep in progress.

    `quiet`: no bar and no per-trial events, only summary lines: those sent with
    `summary=True` (or through `summary()`), and by default those sent while no sweep is shown
    (before `start` or after `stop`: the closing lines of a sweep).
    """

    def __init__(self, stream=None, live: bool | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.live = (bool(isatty and isatty())) if live is None else live
        self.quiet = quiet
        self.current: SweepProgress | None = None
        self._lock = threading.RLock()
        self._display = None  # a rich Live while a bar is shown
        self._console = None
        self._rerouted: list[tuple[logging.StreamHandler, object]] = []

    # ---- the bar ---------------------------------------------------------------------------------

    def start(self, progress: SweepProgress) -> None:
        with self._lock:
            self.current = progress
            if not self.live or self.quiet or self._display is not None:
                return
            from rich.live import Live

            console = self._get_console()
            self._display = Live(
                get_renderable=self._render,
                console=console,
                refresh_per_second=REFRESH_PER_SECOND,
                transient=False,
                redirect_stdout=True,
                redirect_stderr=True,
            )
            self._display.start()
            self._reroute_log_handlers()

    def stop(self) -> None:
        """Draw the bar a last time and end it with a newline; later events print plainly."""
        with self._lock:
            display, self._display = self._display, None
            if display is not None:
                self._restore_log_handlers()
                display.stop()  # draws the bar a last time, then a newline
            self.current = None

    # ---- events ----------------------------------------------------------------------------------

    def event(self, message: str, summary: bool | None = None) -> None:
        """One event line. `summary`: None means "a summary unless a sweep is being shown"."""
        message = redact(message)
        with self._lock:
            if summary is None:
                summary = self._display is None and not (self.quiet and self.current is not None)
            if self.quiet and not summary:
                return
            if not self.live:
                log.info(message)
                return
            stamped = f"{time.strftime(TIME_FORMAT)} {message}"
            try:
                if self._display is not None:
                    from rich.text import Text

                    self._display.console.print(Text(stamped), soft_wrap=True, highlight=False, markup=False)
                else:
                    self.stream.write(stamped + "\n")
                    self.stream.flush()
            except OSError as exc:  # the terminal closed, or the pipe read by nobody now: the line
                # is lost, not the trial being settled when it was said
                log.debug("could not show %r: %s", message, exc)

    def summary(self, message: str) -> None:
        """A line that `--quiet` still prints: the outcome of a sweep."""
        self.event(message, summary=True)

    # ---- internals -------------------------------------------------------------------------------

    def _get_console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, force_terminal=True, highlight=False)
        return self._console

    def _render(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        progress = self.current
        grid = Table.grid(padding=(0, 1))
        if progress is None:
            return grid
        name, bar_width, text = fit_bar(progress, self._get_console().width)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        cells = [name]
        if bar_width:
            grid.add_column(width=bar_width)
            cells.append(
                ProgressBar(
                    total=max(1, progress.total),
                    completed=min(progress.ended, progress.total),
                    width=bar_width,
                    finished_style="green",  # rich's own draws a full bar grey, like an empty one
                )
            )
        grid.add_column(no_wrap=True)
        cells.append(text)
        grid.add_row(*cells)
        return grid

    def _reroute_log_handlers(self) -> None:
        """Log records written to our stream while the bar is shown go above it, not through it."""
        from rich.file_proxy import FileProxy

        proxy = FileProxy(self._display.console, self.stream)
        # Every logger with a handler of its own: ours, and libraries' (Optuna's sampler warnings).
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            for handler in getattr(logger, "handlers", ()):  # placeholders have none
                if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                    self._rerouted.append((handler, handler.stream))
                    handler.setStream(proxy)

    def _restore_log_handlers(self) -> None:
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted.clear()
