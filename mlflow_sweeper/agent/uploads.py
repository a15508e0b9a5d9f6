"""Trial logs attached to their runs, off the workers' path when the tracking store is remote: a
worker whose trial has ended claims its next trial while the log is uploaded over the network, and
the session waits for the uploads before it ends. On a local store (a file, SQLite, a database)
the attach is mostly Python work, which a second thread would only contend for (measured: 7 ms
more per trial on SQLite), so it stays on the worker."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..record import Recorder
from ..storages import is_remote_tracking


class LogUploads:
    """One background thread per session for a remote store; `drain` waits for every upload
    submitted so far."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.background = is_remote_tracking(str(getattr(recorder.client, "tracking_uri", "") or ""))
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def attach(self, run_id: str | None, path: str) -> None:
        if not run_id:
            return
        if not self.background:
            self.recorder.attach_log(run_id, path)  # never raises: logs stay on disk
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
