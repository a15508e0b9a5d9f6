"""`delete`, `status` and `report`: one sweep at a time, touching nothing that belongs to another sweep."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import TrialState

from . import compat
from .config import SweepConfig
from .config.folders import LOGS, REPORTS, existing_sweep_folder
from .constraints import NONE_FEASIBLE
from .coordination import RUN_ATTR, SweepStudy, study_names
from .coordination.companions import missing_companion_lines
from .coordination.fail_fast import FAIL_FAST_STOP, fail_fast_stop
from .coordination.identity import directions_of
from .coordination.names import STARTING_OVER_SUFFIX, TAKEOVER_SUFFIX
from .coordination.tallies import (
    attempted,
    failed_to_retry,
    in_budget,
    infeasible,
    pareto_front,
    warm_budget_words,
    warm_held,
    warm_started,
)
from .coordination.target import REACHED_WORDS, STOPPED_BY_TARGET
from .display import shown_params, shown_value
from .errors import NoSuchSweep, UsageError
from .opening import open_sweep
from .storages import exists as storage_exists
from .storages import mask, retry
from .storages.access import tracking_refusal
from .ui.links import link_lines, ui_links

log = logging.getLogger(__name__)


@dataclass
class DeleteResult:
    identity: str
    study_deleted: bool
    runs_deleted: int
    purged: bool

    def message(self) -> str:
        if not self.study_deleted and not self.runs_deleted:
            return f"{self.identity}: no such sweep, nothing to delete"
        how = "permanently deleted" if self.purged else "deleted (restorable in the MLflow UI)"
        if not self.study_deleted:  # runs left of a sweep deleted before (`mlflow run -e ...`'s own)
            gone = f"no such sweep in the Optuna storage; {self.runs_deleted} MLflow run(s) of it"
            return f"{self.identity}: {gone} {how}"
        return f"{self.identity}: its Optuna study and {self.runs_deleted} MLflow run(s) {how}"


def delete_sweep(config: SweepConfig, purge: bool = False) -> DeleteResult:
    """The sweep's runs first, then its studies: a tracking server that refuses this user the
    runs (deleting needs MANAGE there) stops the command with the sweep whole, not half gone."""
    sweep = open_sweep(config, create=False)
    # The recorder is opened before the study (and the store recorded in it) is gone.
    study, recorder, elsewhere = sweep.study, sweep.recorder, sweep.runs_elsewhere()
    runs_deleted = 0
    if recorder is not None:
        try:
            runs_deleted, purge = _delete_runs(recorder, purge, sweep.parent_id)
        except Exception as exc:  # noqa: BLE001 - a refusal is the user's to fix: exit 2
            uri = str(recorder.client.tracking_uri)
            refused = tracking_refusal(exc, uri, config.experiment, "delete runs of")
            if refused is None:
                raise
            raise refused from None
    if elsewhere is not None and not runs_deleted:  # half deleted, it would come back with a second parent
        raise UsageError(
            f"{elsewhere}: nothing deleted. Name the store that holds them (mlflow_storage or "
            "MLFLOW_TRACKING_URI), or leave both unset to use the recorded one"
        )
    study_deleted = False
    if study is not None:
        for name in (*study_names(config.identity), *_start_over_locks(study)):
            try:
                study_id = retry(lambda n=name: study.storage.get_study_id_from_name(n), "find study")
            except KeyError:
                continue
            retry(lambda s=study_id: study.storage.delete_study(s), f"delete study {name}")
            study_deleted = True
    for kept_here in (LOGS, REPORTS):  # what this machine kept of the sweep goes with it
        folder = existing_sweep_folder(config.output_dir / kept_here, config.identity)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return DeleteResult(config.identity, study_deleted, runs_deleted, purge)


def sweep_exists(config: SweepConfig, purge: bool = False) -> bool:
    """Has `delete` (`purge`: `delete --purge`) anything of this sweep to delete, its study or
    runs? Creates nothing."""
    sweep = open_sweep(config, create=False)
    if sweep.study is not None:
        return True
    return sweep.recorder is not None and bool(_own_runs_to_delete(sweep.recorder, purge, None))


def _delete_runs(recorder, purge: bool, parent_id: str | None) -> tuple[int, bool]:
    """Delete (`purge`: purge) the sweep's runs; how many, and whether they were purged."""
    from .record import current_run_id

    runs = _own_runs_to_delete(recorder, purge, parent_id)
    runs = [run for run in runs if run.info.run_id != current_run_id()]
    can_purge = purge and compat.can_hard_delete(recorder.client)
    if purge and not can_purge:
        log.warning(
            "%s cannot purge runs through a tracking server; they are soft-deleted "
            "(run `mlflow gc` on the server to purge)",
            mask(recorder.client.tracking_uri),
        )
    deleted = 0
    for run in runs:
        run_id = run.info.run_id
        if run.info.lifecycle_stage != "deleted":
            retry(lambda r=run_id: recorder.client.delete_run(r), "delete run")
        if can_purge:
            _delete_artifacts(run.info.artifact_uri)
            _remove_empty_run_dir(run.info.artifact_uri, run_id)
            retry(lambda r=run_id: compat.hard_delete_run(recorder.client, r), "purge run")
        deleted += 1
    return deleted, can_purge


def _own_runs_to_delete(recorder, purge: bool, parent_id: str | None) -> list:
    """The sweep's runs `delete` deletes: the active ones, every one with `purge`. Its parents are
    told by every run, deleted ones too: a parent deleted in the UI still has its trials."""
    from mlflow.entities import ViewType  # imported here, not for `status` (it takes seconds)

    tagged = recorder.sweep_runs(ViewType.ALL, everywhere=True)
    runs = own_runs(tagged, parent_id, recorder.config.optuna_storage)
    return runs if purge else [run for run in runs if run.info.lifecycle_stage == "active"]


def own_runs(runs: list, parent_id: str | None, optuna_storage: str) -> list:
    """Of the runs tagged with a sweep's name, those of this sweep: its parents and the runs under
    them, and the `mlflow run -e status|delete` records that name it. Another sweep of the same name
    in the same MLflow store, with another Optuna storage, has parents and records of its own, and
    keeps them.

    A parent is this sweep's when its study names it, or when it records this Optuna storage; one
    that records none (made by an earlier version) counts only when the study is gone, as before.
    """
    from .record.agent_run import PARENT_TAG  # here: `status` does not import MLflow
    from .record.tags import MLFLOW_PARENT_RUN_ID, OPTUNA_STORAGE_TAG, ROLE_TAG, optuna_storage_id

    storage_id = optuna_storage_id(optuna_storage)

    def ours(run) -> bool:
        recorded = run.data.tags.get(OPTUNA_STORAGE_TAG)
        return recorded == storage_id or (recorded is None and parent_id is None)

    def our_command(run) -> bool:  # an admin run records the storages of the sweeps it named
        recorded = run.data.tags.get(OPTUNA_STORAGE_TAG)
        return recorded is None or storage_id in recorded.split(",")

    parents = {run.info.run_id for run in runs if run.data.tags.get(ROLE_TAG) == "parent" and ours(run)}
    parents |= {parent_id} if parent_id else set()

    def belongs(run) -> bool:
        tags = run.data.tags
        if tags.get(ROLE_TAG) == "admin":
            return our_command(run)
        linked = (run.info.run_id, tags.get(MLFLOW_PARENT_RUN_ID), tags.get(PARENT_TAG))
        return any(link in parents for link in linked)

    return [run for run in runs if belongs(run)]


def _start_over_locks(study: SweepStudy) -> list[str]:
    """Lock studies left by an agent that died while starting the sweep over, and the elections
    of an agent creating the parent run in place of a creator that died: they go too."""
    prefixes = tuple(study.config.identity + suffix for suffix in (STARTING_OVER_SUFFIX, TAKEOVER_SUFFIX))
    studies = retry(lambda: study.storage.get_all_studies(), "list studies")
    return [s.study_name for s in studies if s.study_name.startswith(prefixes)]


def _delete_artifacts(artifact_uri: str) -> None:
    try:
        compat.delete_artifacts(artifact_uri)
    except Exception as exc:  # noqa: BLE001 - the run itself is still purged
        log.debug("could not delete artifacts at %s: %s", artifact_uri, exc)


def _remove_empty_run_dir(artifact_uri: str, run_id: str) -> None:
    """A purged run leaves no empty folder behind in a local artifact store (`mlruns/<exp>/<run>`)."""
    local = compat.local_artifact_path(artifact_uri)
    if local is None:
        return
    artifacts = Path(local)
    shutil.rmtree(artifacts, ignore_errors=True)
    run_dir = artifacts.parent
    if run_dir.name == run_id:
        with contextlib.suppress(OSError):  # not empty (a file store's own files): left alone
            run_dir.rmdir()


def sweep_status_data(config: SweepConfig) -> dict:
    """One sweep's status as plain data: `status --json` prints it, `status` formats it. A sweep
    that does not exist reads as no parent, zero counts (its budget too: it has none yet) and no
    best trial."""
    entry = _empty_status(config)
    sweep = open_sweep(config, create=False)
    study = sweep.study
    if study is None:
        return entry
    trials = study.trials()
    entry.update(_counts(study, trials))
    entry["config_changed"] = study.identity.config_changes()  # the budget shown is this config's
    if entry["stopped"] is None and not entry["running"]:  # resumable: the rest is still owed
        reason = fail_fast_stop(trials, config.fail_fast)
        if reason is not None:
            entry["stopped"], entry["stopped_reason"] = FAIL_FAST_STOP, reason
    parent = entry["parent_run_id"] = sweep.parent_id
    if parent:
        state = _parent_state(sweep, parent)
        if state is None:
            sweep.warn_runs_elsewhere()
        else:
            entry["parent_status"], entry["parent_deleted"] = state
        remote = sweep.tracking_uri.startswith(("http://", "https://"))  # links only to a server's UI
        recorder = sweep.recorder if remote else None
        if recorder is not None:
            entry["links"] = ui_links(recorder.client.tracking_uri, recorder.experiment_id, parent)
    if config.objective.multi:  # no single best: the trials no other one beats on every metric
        front = pareto_front(trials, directions_of(config))
        entry["pareto"] = [{"values": list(t.values), **_trial_entry(t)} for t in front]
        return entry
    best = _best_trial(study)
    if best is not None:
        entry["best"] = {"value": best.value, **_trial_entry(best)}
    return entry


def _empty_status(config: SweepConfig) -> dict:
    return {
        "sweep": config.identity,
        "exists": False,
        "parent_run_id": None,
        "config_changed": [],
        "parent_status": None,
        "parent_deleted": False,
        "budget": 0,
        "done": 0,
        "running": 0,
        "failed": 0,
        "infeasible": 0,
        "pruned": 0,
        "complete": 0,
        "failed_to_retry": 0,
        "warm_started": 0,
        "warm_held": 0,
        "attempts": 0,
        "running_agent_gone": 0,
        "remaining": 0,
        "stopped": None,
        "stopped_reason": None,
        "best": None,
        "missing_companions": [],
        "links": {},
    }


def _counts(study, trials: list) -> dict:
    """The budget and where its points stand. done: the points that need nothing more
    (completed, pruned, or failed for good)."""
    states = Counter(trial.state for trial in trials if in_budget(trial, study.budget))
    failed_for_good = [t for t in study.failed_for_good(trials) if t.state != TrialState.PRUNED]
    failed = len(failed_for_good)
    complete, running = states[TrialState.COMPLETE], states[TrialState.RUNNING]
    now = time.time()
    agent_gone = sum(
        1
        for t in trials
        if t.state == TrialState.RUNNING and in_budget(t, study.budget) and study.owner_gone(t, now)
    )
    pruned = states[TrialState.PRUNED]
    done = complete + pruned + failed
    target_reached = study.target_reached()
    remaining = 0 if target_reached else max(0, study.budget - done - running)  # target: none owed
    return {
        "exists": True,
        "budget": study.budget,
        "complete": complete,
        "running": running,
        "running_agent_gone": agent_gone,  # running, but their agent died or went silent
        "failed": failed,
        "infeasible": len(infeasible(failed_for_good)),  # of the failed: results, never retried
        "failed_to_retry": failed_to_retry(trials),
        "pruned": pruned,
        "warm_started": warm_started(trials),
        "warm_held": warm_held(trials, study.budget),  # of those, holding points of the budget: done
        "attempts": sum(1 for t in trials if attempted(t)),
        "missing_companions": study.missing_companions,
        "done": done,
        "remaining": remaining,
        "stopped": STOPPED_BY_TARGET if target_reached else None,
        "stopped_reason": REACHED_WORDS if target_reached else None,
    }


def _parent_state(sweep, parent: str) -> tuple[str, bool] | None:
    """The parent run's status, and whether it was deleted (in the UI): read from a database store
    directly when it can be (importing MLflow takes seconds, most of `status`'s time), else through
    MLflow; None when not found."""
    if storage_exists(sweep.tracking_uri):
        state = compat.run_state_in_database(sweep.tracking_uri, parent)
        if state is not None:
            return state
    recorder = sweep.recorder
    if recorder is None:
        return None
    try:
        info = recorder.client.get_run(parent).info
    except Exception:  # noqa: BLE001 - shown as "not found in MLflow"
        return None
    return info.status, info.lifecycle_stage == "deleted"


def _trial_entry(trial) -> dict:
    return {"params": dict(trial.params), "run_id": trial.user_attrs.get(RUN_ATTR), "trial": trial.number}


def _best_trial(study: SweepStudy):
    try:
        return study.best_trial()
    except (ValueError, RuntimeError):  # no single best trial (e.g. several objectives)
        return None


def sweep_status(config: SweepConfig) -> str:
    data = sweep_status_data(config)
    lines = [config.identity]
    if not data["exists"]:
        lines.append("  not started")
        return "\n".join(lines)
    parent = data["parent_run_id"]
    parent_state = ""
    if parent:
        parent_state = f" ({data['parent_status']})" if data["parent_status"] else " (not found in MLflow)"
        if data["parent_deleted"]:
            parent_state = (
                f" ({data['parent_status']}, deleted in MLflow: restore it in the UI, or run the sweep again)"
            )
    lines.append(f"  parent run: {parent or '-'}{parent_state}")
    if data["config_changed"]:  # an agent would refuse it: the counts below are against this config
        lines.append(f"  this config differs from the sweep's: {'; '.join(data['config_changed'])}")
    lines.extend(missing_companion_lines(data["missing_companions"]))
    lines.extend(f"  {line}" for line in link_lines(data.get("links", {})))
    failed = f"{data['failed']} failed"
    if data.get("infeasible"):
        failed += f" ({data['infeasible']} infeasible)"
    if data["failed_to_retry"]:
        failed = f"{data['failed_to_retry']} failed (will be retried on resume)"
        failed = f"{data['failed']} failed for good, {failed}" if data["failed"] else failed
    attempts = f"{data['attempts']} attempt{'' if data['attempts'] == 1 else 's'}"
    running = f"{data['running']} running"
    if data.get("running_agent_gone"):
        running += f" ({data['running_agent_gone']} whose agent is gone: the next agent takes them over)"
    done = f"{data['done']}/{data['budget']} done"
    if data["done"] > data["budget"]:  # max_trials lowered on resume: what ran stays done
        done = f"{data['done']} done (max_trials is {data['budget']}: lowered after they ran)"
    lines.append(
        f"  points: {done}, {running}, "
        f"{failed}, {data['pruned']} pruned, {data['remaining']} remaining ({attempts})"
    )
    if data.get("stopped") == STOPPED_BY_TARGET:
        lines.append(f"  stopped early: {data['stopped_reason']} (no new trials start; the rest is not owed)")
    elif data.get("stopped"):
        lines.append(f"  stopped: {data['stopped_reason']}; fix the cause and run the sweep again to resume")
    if data.get("warm_started"):
        held = warm_budget_words(data["warm_held"])
        lines.append(f"  warm start: {data['warm_started']} earlier result(s) in the study ({held})")
    if "pareto" in data:
        lines.extend(_pareto_lines(config, data["pareto"]))
        return "\n".join(lines)
    best = data["best"]
    if best is not None:
        params = shown_params(best["params"])
        lines.append(
            f"  best: {config.objective.metric}={shown_value(best['value'])} in trial {best['trial']} "
            f"(run {best['run_id'] or '-'}): {params}"
        )
    else:
        lines.append(f"  best: - ({NONE_FEASIBLE})" if config.objective.constraints else "  best: -")
    return "\n".join(lines)


PARETO_SHOWN = 10  # front trials listed by `status`; `--json` and the parent's tag list them all


def _pareto_lines(config: SweepConfig, front: list[dict]) -> list[str]:
    """Several objectives: the Pareto front, a line per trial on it."""
    if not front:
        why = f" ({NONE_FEASIBLE})" if config.objective.constraints else ""
        return [f"  pareto front: -{why}"]
    lines = [f"  pareto front: {len(front)} trial{'' if len(front) == 1 else 's'}"]
    for entry in front[:PARETO_SHOWN]:
        values = ", ".join(
            f"{n}={shown_value(v)}" for n, v in zip(config.objective.names, entry["values"], strict=True)
        )
        params = shown_params(entry["params"])
        lines.append(f"    trial {entry['trial']} (run {entry['run_id'] or '-'}): {values}: {params}")
    if len(front) > PARETO_SHOWN:
        lines.append(f"    ... and {len(front) - PARETO_SHOWN} more (status --json lists them all)")
    return lines


def sweep_report(config: SweepConfig, out_dir: str | Path | None, log_it: bool):
    """`report`: build the report of a sweep at any time, and log it to its parent if asked.

    Returns the report and whether it was logged (None when not asked)."""
    from .report import build_report, default_report_dir, log_report

    sweep = open_sweep(config, create=False)
    study = sweep.study
    if study is None:
        raise NoSuchSweep(f"{config.identity}: no such sweep (nothing to report on)")
    try:
        out = Path(out_dir) if out_dir else default_report_dir(config)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = out_dir or config.output_dir / REPORTS
        raise UsageError(f"cannot write the report into {where}: {exc.strerror or exc}") from None
    report = build_report(config, study.trials(), out)
    if not log_it:
        return report, None
    parent, recorder = sweep.parent_id, sweep.recorder
    if not parent or recorder is None:
        raise NoSuchSweep(f"{config.identity}: the sweep has no parent run in MLflow to log the report to")
    return report, log_report(recorder.client, parent, report)
