"""The agent process: signal handling, the `--count` budget, and the sweeps one after another."""

from __future__ import annotations

import os
import signal
import threading

from ..config import SweepConfig
from ..coordination import agent_id
from ..devices import DevicePlan, plan_devices
from ..errors import EXIT_INTERRUPTED, EXIT_OK
from ..launch import kill_tree
from ..preflight import CheckedProject, preflight_all, release
from ..progress import Reporter
from ..record import quiet_run_urls
from .session import SweepSession


class Agent:
    def __init__(
        self,
        n_jobs: int | None = 1,
        count: int | None = None,
        reporter: Reporter | None = None,
        retry_failed: bool = False,
    ):
        self.requested_jobs = n_jobs  # None: not given (`devices` then decide)
        self.n_jobs = max(1, n_jobs or 1)
        self.device_plans: dict[int, DevicePlan] = {}  # by id(config): this host's devices
        self.count = count
        self.retry_failed = retry_failed  # points that failed for good get a fresh set of attempts
        self.started = 0
        self.reporter = reporter or Reporter()
        self.stop = threading.Event()
        self.agent = agent_id()
        self.trial_pids: set[int] = set()
        self.workers_active = False  # set while workers run: Ctrl-C then cancels them cleanly
        self._lock = threading.Lock()

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            if not self.workers_active:
                raise KeyboardInterrupt  # nothing to cancel yet: leave now, exit 130
            if self.stop.is_set():
                # Second Ctrl-C: kill what is running and leave at once.
                for pid in list(self.trial_pids):
                    kill_tree(pid, grace=0)
                os._exit(EXIT_INTERRUPTED)
            self.stop.set()
            self.reporter.event("interrupted: cancelling running trials (press Ctrl-C again to quit at once)")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def run(self, configs: list[SweepConfig]) -> int:
        """Each sweep in turn; the worst exit code, or 130 at once when interrupted.

        Every config's project is checked first, before any storage is touched (a bad project
        exits 2 with nothing written); a git project is fetched here, once for the whole agent."""
        checked = preflight_all(configs)
        quiet_run_urls()
        try:
            return self._run_checked(configs, checked)
        finally:
            release(checked.values())

    def _run_checked(self, configs: list[SweepConfig], checked: dict[int, CheckedProject | None]) -> int:
        code = EXIT_OK
        for config in configs:
            if self.stop.is_set():
                return EXIT_INTERRUPTED
            self._plan_devices(config)
            result = SweepSession.open(self, config, checked.get(id(config))).run()
            if result.interrupted:
                return EXIT_INTERRUPTED
            code = max(code, result.exit_code)
            if self.count is not None and self.started >= self.count:
                break
        return code

    def _plan_devices(self, config: SweepConfig) -> None:
        """This host's devices for the sweep (`auto` asks nvidia-smi), and `-j` from them."""
        plan = plan_devices(config.devices, config.devices_per_trial, config.device_env)
        self.device_plans[id(config)] = plan
        self.n_jobs, capped = plan.jobs(self.requested_jobs)
        for note in (*plan.notes, capped):
            if note:
                self.reporter.event(f"{config.identity}: {note}")
        if plan.groups:
            self.reporter.event(
                f"{config.identity}: devices {','.join(plan.devices)} ({config.device_env}), "
                f"{plan.per_trial} per trial"
            )

    def reserve_start(self) -> bool:
        """Count a trial against --count; False once this agent has started enough."""
        with self._lock:
            if self.count is not None and self.started >= self.count:
                return False
            self.started += 1
            return True

    def release_start(self) -> None:
        with self._lock:
            self.started -= 1
