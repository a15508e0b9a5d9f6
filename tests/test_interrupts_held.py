"""Writes that must land together (a new sweep's study and what defines it) are not cut by Ctrl-C:
the signal waits for the block's end, then acts as it would have."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mlflow_sweeper.hangup import interrupts_held


def test_ctrl_c_inside_the_block_is_raised_after_it():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    written = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a handler would have run by now
            written.append("definition")
        assert written == ["definition"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # `nohup`
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
