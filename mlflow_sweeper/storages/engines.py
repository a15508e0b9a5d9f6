"""Settings added to a SQLAlchemy engine once, however often it is opened.

MLflow hands every client of a URI the same store, and with it the same engine: a setting
added at each open would stack its listeners, and its pool reset would drop connections that
another thread is making (SQLAlchemy then fails that thread's first connect).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

_done: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> names of its settings
_adding = threading.Lock()


def once_per_engine(engine, setting: str, add: Callable[[], None]) -> None:
    """Run `add` (which sets `setting` up on `engine`) unless this engine has it already; the
    pooled connections then reconnect with it."""
    with _adding:
        done = _done.setdefault(engine, set())
        if setting in done:
            return
        add()
        engine.dispose()
        done.add(setting)
