"""Building one agent's parts for one sweep, once, when it opens: the sweep itself (`open_sweep`:
both storages, the study found or created, drift, the parent run), then the agent's own run
tagged, the launcher, the progress and counts, the early-stopping watch and the log uploads."""

from __future__ import annotations

from collections.abc import Callable

from ..config import SweepConfig
from ..coordination.tallies import Progress, warm_budget_words
from ..devices import NO_DEVICE_POOL, DevicePool, NoDevicePool
from ..launch import Launcher, make_launcher
from ..opening import open_sweep
from ..preflight import CheckedProject
from ..progress import Reporter, SweepProgress
from ..record import tag_agent_run
from ..shared_artifacts import warn_if_artifacts_local
from ..storages.pools import store_turn
from ..ui.live import LiveDescription
from .counts import SweepCounts
from .parts import SweepParts
from .result import SweepResult
from .stop import StopSignal
from .uploads import LogUploads
from .watch import watch_for


def open_parts(
    config: SweepConfig,
    checked: CheckedProject | None,
    console: Reporter,
    stop: StopSignal,
    agent: str,
    n_jobs: int,
    launcher_factory: Callable[..., Launcher] = make_launcher,
    devices: DevicePool | NoDevicePool = NO_DEVICE_POOL,
) -> SweepParts:
    """The sweep opened for this agent, and every part a session on it is built from.
    `launcher_factory` takes `make_launcher`'s arguments (a test passes its own launcher);
    `devices` is this host's pool for the sweep, planned by the agent (it also sizes `n_jobs`)."""
    sweep = open_sweep(config, agent=agent, n_jobs=n_jobs)
    study, recorder, parent_id = sweep.study, sweep.recorder, sweep.parent_id
    assert study is not None and recorder is not None and parent_id is not None  # opened, not found
    if sweep.started_over:
        console.event(sweep.started_over)
    if sweep.config_stored:
        console.event(sweep.config_stored, summary=False)  # --quiet prints only the summary
    client = recorder.client
    tallies = study.progress()
    if sweep.warm_summary:  # this agent entered the earlier results of `warm_start`
        console.event(sweep.warm_summary, summary=False)  # --quiet prints only the summary
    elif tallies.warm_started:  # another agent did, or an earlier run of this one
        console.event(
            f"{config.identity}: warm start: {tallies.warm_started} earlier result(s) in this sweep, "
            f"entered when it was created ({warm_budget_words(tallies.warm_held)})",
            summary=False,
        )
    hint = tag_agent_run(config, parent_id, recorder.experiment_id, client.tracking_uri)
    if hint:
        console.event(hint)
    warn_if_artifacts_local(console, client, recorder.experiment_id)
    launcher = launcher_factory(config, client.tracking_uri, config.log_dir, checked, store_turn(client))
    progress = _progress(config, tallies)
    return SweepParts(
        config=config,
        study=study,
        recorder=recorder,
        parent_id=parent_id,
        launcher=launcher,
        console=console,
        stop=stop,
        progress=progress,
        counts=SweepCounts(progress, single_objective=not config.objective.multi),
        checked=checked,
        watch=watch_for(config, recorder, study),
        uploads=LogUploads(recorder),
        devices=devices,
        result=SweepResult(config.identity),
        description=LiveDescription(config, study, recorder, parent_id, progress),
    )


def _progress(config: SweepConfig, tallies: Progress) -> SweepProgress:
    """The progress shown from the start: what the sweep's trials so far already count."""
    progress = SweepProgress(
        name=config.identity,
        total=tallies.budget,
        done=tallies.complete,
        failed=tallies.failed_for_good,
        pruned=tallies.pruned,
        direction=config.objective.direction,
    )
    if tallies.best is not None:
        progress.best = tallies.best.value
    return progress
