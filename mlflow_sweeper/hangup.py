"""A hang-up (SIGHUP: the terminal the agent ran in was closed) stops the agent as Ctrl-C does.

Left to its default, a hang-up would kill the agent alone: its trials run in sessions of their
own, and would run on without it. Kept free of heavy imports: the CLI installs it before MLflow
is imported.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from types import FrameType

Handler = Callable[[int, FrameType | None], object]


def on_hangup(handler: Handler) -> None:
    """Run `handler` on a hang-up, unless hang-ups are ignored on purpose (`nohup`). The output
    that went to the terminal goes nowhere from then on: what the agent still says while it stops
    (the cancelled trials, the summary) would fail on writes to a closed terminal."""
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return
    terminal = [fd for fd in (1, 2) if _is_terminal(fd)]  # read now: a hung-up terminal says no

    def hangup(signum: int, frame: FrameType | None) -> None:
        try:
            nowhere = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            nowhere = None
        if nowhere is not None:
            for fd in terminal:
                with contextlib.suppress(OSError):
                    os.dup2(nowhere, fd)
            os.close(nowhere)
        handler(signum, frame)

    signal.signal(signal.SIGHUP, hangup)


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


@contextlib.contextmanager
def interrupts_held():
    """Ctrl-C, SIGTERM and a hang-up wait until the block ends, then act as they would have: for
    writes that must land together (a new sweep's study and what defines it, which an agent
    interrupted between them left half made). Only the main thread sets handlers; elsewhere the
    block runs as it is."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    held = [s for s in signals if signal.getsignal(s) not in (signal.SIG_IGN, None)]  # None: set in C
    previous = {s: signal.signal(s, remember) for s in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])  # to the handler it was meant for
