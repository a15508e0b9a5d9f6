"""Trial logs attached to their runs off the workers' path: a worker whose trial has ended claims
its next trial while the log is uploaded, and the session waits for the uploads before it ends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..record import Recorder


class LogUploads:
    """One background thread per session; `drain` waits for every upload submitted so far."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def attach(self, run_id: str | None, path: str) -> None:
        if not run_id:
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-upload")
            self._pool.submit(self.recorder.attach_log, run_id, path)  # never raises: logs stay on disk

    def drain(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
