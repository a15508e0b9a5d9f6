"""The agent process: signal handling, the `--count` budget, and the sweeps one after another."""

from __future__ import annotations

import os
import signal

from ..config import SweepConfig
from ..coordination import agent_id
from ..devices import DevicePlan, UnusableDevices, device_pool, plan_devices
from ..errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError
from ..hangup import on_hangup
from ..invocation import when_mlflow_run_ends
from ..opening import check_before_running
from ..preflight import CheckedProject, preflight_all, release
from ..progress import Reporter
from ..record import end_orphaned_agent_run, quiet_run_urls
from .opening import open_parts
from .session import SweepSession
from .stop import StartBudget, StopSignal

# A signal this soon after the first is the same one delivered twice (GNU `timeout` passes its
# SIGINT to the agent and to its own process group), not a second Ctrl-C that means "quit now".
SAME_SIGNAL_SECONDS = 0.5


def devices_of(config: SweepConfig) -> DevicePlan:
    """This host's devices for the sweep (`auto` asks nvidia-smi), which also size `-j`; too few
    for one trial: exit 2."""
    try:
        return plan_devices(config.devices, config.devices_per_trial, config.device_env)
    except UnusableDevices as exc:  # the config asks what this host cannot give: its file named
        raise ConfigError(str(config.path), None, str(exc)) from None


class Agent:
    def __init__(
        self,
        n_jobs: int | None = 1,
        count: int | None = None,
        reporter: Reporter | None = None,
        retry_failed: bool = False,
    ):
        self.n_jobs = n_jobs  # None: not given (1, or with `devices` one per device group)
        self.retry_failed = retry_failed  # points that failed for good get a fresh set of attempts
        self.starts = StartBudget(count)  # `--count`, across all the sweeps of this agent
        self.reporter = reporter or Reporter()
        self.stop = StopSignal()
        self.agent = agent_id()
        self.starter_ended = False  # the `mlflow run` that started this agent ended before it

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            if not self.stop.workers_active:
                raise KeyboardInterrupt  # nothing to cancel yet: leave now, exit 130
            if self.stop.is_set():
                if self.stop.set_within(SAME_SIGNAL_SECONDS):
                    return  # the first one delivered twice: the clean cancel goes on
                # Second Ctrl-C: kill what is running and leave at once.
                self.reporter.summary("interrupted again: stopping running trials and quitting at once")
                self.stop.kill_trials()
                os._exit(EXIT_INTERRUPTED)
            self.stop.set()
            self.reporter.event("interrupted: cancelling running trials (press Ctrl-C again to quit at once)")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        on_hangup(handler)  # a closed terminal, as Ctrl-C
        when_mlflow_run_ends(self._starter_ended)

    def _starter_ended(self) -> None:
        """The `mlflow run` that started this agent ended (a SIGTERM it did not pass on): the
        agent stops as on SIGTERM, and ends its own run, which that process would have ended."""
        self.starter_ended = True
        if self.stop.is_set():  # stopping already (a Ctrl-C it passed on): no second signal, which
            return  # would quit at once
        self.reporter.summary("the `mlflow run` that started this agent has ended: stopping as on SIGTERM")
        os.kill(os.getpid(), signal.SIGTERM)

    def run(self, configs: list[SweepConfig]) -> int:
        """Each sweep in turn; the worst exit code, or 130 at once when interrupted.

        Every config's devices and project are checked first, before any storage is touched (too
        few GPUs or a bad project exits 2 with nothing written); a git project is fetched here,
        once for the whole agent."""
        try:
            plans = {id(config): devices_of(config) for config in configs}
            checked = preflight_all(configs)
            quiet_run_urls()
            try:
                for config in configs[1:]:  # the first is checked as it opens, before anything is written
                    check_before_running(config)
                return self._run_checked(configs, checked, plans)
            finally:
                release(checked.values())
        finally:
            if self.starter_ended:  # whenever it stopped: no one else ends the run
                end_orphaned_agent_run()

    def _run_checked(
        self,
        configs: list[SweepConfig],
        checked: dict[int, CheckedProject | None],
        plans: dict[int, DevicePlan],
    ) -> int:
        code = EXIT_OK
        for config in configs:
            if self.stop.is_set():
                return EXIT_INTERRUPTED
            result = self.open_session(config, checked.get(id(config)), plans[id(config)]).run()
            if result.interrupted:
                return EXIT_INTERRUPTED
            code = max(code, result.exit_code)
            if self.starts.used_up():
                break
        return code

    def open_session(
        self, config: SweepConfig, checked: CheckedProject | None = None, plan: DevicePlan | None = None
    ) -> SweepSession:
        """Open the sweep and build this agent's session on it from its parts."""
        plan = plan if plan is not None else devices_of(config)
        self._announce_devices(config, plan)
        n_jobs, capped = plan.jobs(self.n_jobs)
        if capped:
            self.reporter.event(f"{config.identity}: {capped}")
        pool = device_pool(plan)
        parts = open_parts(config, checked, self.reporter, self.stop, self.agent, n_jobs, devices=pool)
        return SweepSession(parts, n_jobs, self.starts, self.retry_failed)

    def _announce_devices(self, config: SweepConfig, plan: DevicePlan) -> None:
        if config.devices is None and config.devices_per_trial != 1:
            self.reporter.event(
                f"{config.identity}: devices_per_trial applies only with devices, which this "
                "config does not name: trials run without devices"
            )
        for note in plan.notes:
            self.reporter.event(f"{config.identity}: {note}")
        if plan.groups:
            self.reporter.event(
                f"{config.identity}: devices {','.join(plan.devices)} ({config.device_env}), "
                f"{plan.per_trial} per trial",
                summary=False,  # what all goes as asked: --quiet prints only the summary
            )
