"""Early stopping on the real things: a SQLite Optuna storage, a SQLite MLflow tracking store,
metric histories logged step by step into real runs, and Optuna's own pruners deciding.

Time is a manual clock handed to the watch, so the rate limit is checked by counting reads,
never by timing; one test uses the real clock with a margin.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from mlflow_sweeper.errors import ConfigError
from mlflow_sweeper.pruning import (
    DEFAULT_INTERVAL,
    PRUNED_TAG,
    PRUNERS,
    EarlyStopping,
    TrialWatch,
    parse_early_stopping,
    pruned_values,
    tell_pruned,
)
from mlflow_sweeper.storages import open_optuna_storage, with_sqlite_timeout

METRIC = "val/loss"
INTERVAL = 5.0
CURVE = Path(__file__).resolve().parent.parent / "examples" / "curve.py"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = INTERVAL) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


class Sweep:
    """One study in a real Optuna storage and one experiment in a real MLflow store; the watch
    opens its own storage object, as another agent would."""

    def __init__(self, tmp_path, tracking_uri: str, direction: str = "minimize", url: str | None = None):
        url = url or f"sqlite:///{tmp_path / 'optuna.db'}"
        self.storage = open_optuna_storage(url)
        self.agent_storage = open_optuna_storage(url)
        self.name = f"exp/{uuid.uuid4().hex[:8]}"
        self.study = optuna.create_study(study_name=self.name, storage=self.storage, direction=direction)
        self.study_id = self.storage.get_study_id_from_name(self.name)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self.client.create_experiment(f"pruning-{uuid.uuid4().hex}")
        self.clock = Clock()

    def watch(self, pruner: str = "median", options: dict | None = None, interval: float = INTERVAL):
        spec = EarlyStopping(pruner, options or {}, interval)
        return TrialWatch(self.client, self.agent_storage, self.name, METRIC, spec, clock=self.clock)

    def start_trial(self) -> tuple[int, str]:
        trial_id = self.storage.create_new_trial(self.study_id)
        run_id = self.client.create_run(self.experiment_id).info.run_id
        return trial_id, run_id

    def log(self, run_id: str, step: int, value: float, timestamp: int | None = None) -> None:
        stamp = timestamp if timestamp is not None else int(time.time() * 1000)
        self.client.log_metric(run_id, METRIC, value, timestamp=stamp, step=step)

    def complete_with_curve(self, curve: list[float]) -> int:
        """A trial another agent ran to the end without pruning: its history is in Optuna."""
        trial_id = self.storage.create_new_trial(self.study_id)
        for step, value in enumerate(curve):
            self.storage.set_trial_intermediate_value(trial_id, step, value)
        self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [curve[-1]])
        return trial_id

    def run_watched(self, watch: TrialWatch, curve: list[float]) -> int | None:
        """Run one trial the way an agent does: log a step, let an interval pass, check; a
        pruned trial is told PRUNED, a finished one reported and completed. Returns the step
        at which it was pruned, or None."""
        trial_id, run_id = self.start_trial()
        assert watch.check(trial_id, run_id) is False  # first sight: no read yet
        for step, value in enumerate(curve):
            self.log(run_id, step, value)
            self.clock.advance(watch.interval)
            if watch.check(trial_id, run_id):
                watch.forget(trial_id)
                assert tell_pruned(self.storage, trial_id)
                return step
        watch.finish(trial_id, run_id)
        self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [curve[-1]])
        return None

    def intermediate(self, trial_id: int) -> dict[int, float]:
        return dict(self.storage.get_trial(trial_id).intermediate_values)


def good_curve(rate: float, steps: int = 10, floor: float = 0.1) -> list[float]:
    return [floor + math.exp(-rate * step) for step in range(steps)]


# ---- the watch ------------------------------------------------------------------------------------


def test_bad_curve_is_pruned_once_the_median_has_evidence(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    for rate in (0.5, 0.6, 0.7, 0.8, 0.9):
        sweep.complete_with_curve(good_curve(rate))
    watch = sweep.watch("median", {"n_startup_trials": 5, "n_warmup_steps": 2})
    trial_id, run_id = sweep.start_trial()

    assert watch.check(trial_id, run_id) is False
    verdicts = []
    for step in range(6):
        sweep.log(run_id, step, 2.0)
        sweep.clock.advance()
        verdicts.append(watch.check(trial_id, run_id))
        if verdicts[-1]:
            break
    # Steps 0 and 1 are warm-up steps; at step 2 the trial is worse than every finished trial.
    assert verdicts == [False, False, True]
    assert sweep.intermediate(trial_id) == {0: 2.0, 1: 2.0, 2: 2.0}
    assert watch.reads[trial_id] == 3


def test_good_curve_is_never_pruned(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    for rate in (0.3, 0.4, 0.5, 0.6, 0.7):
        sweep.complete_with_curve(good_curve(rate))
    watch = sweep.watch("median", {"n_startup_trials": 5})
    curve = good_curve(1.5)
    assert sweep.run_watched(watch, curve) is None
    last = sweep.storage.get_all_trials(sweep.study_id)[-1]
    assert last.state == TrialState.COMPLETE
    assert last.intermediate_values == dict(enumerate(curve))


def test_the_pruner_is_asked_after_each_new_step_as_in_an_optuna_loop(tmp_path, tracking_uri):
    """Six steps logged between two reads: the pruner stops the trial at step 2, as
    `trial.report(); trial.should_prune()` per step would, and later steps are not reported."""
    sweep = Sweep(tmp_path, tracking_uri)
    for rate in (0.5, 0.6, 0.7, 0.8, 0.9):
        sweep.complete_with_curve(good_curve(rate))
    watch = sweep.watch("median", {"n_startup_trials": 5, "n_warmup_steps": 2})
    trial_id, run_id = sweep.start_trial()
    watch.check(trial_id, run_id)
    for step in range(6):
        sweep.log(run_id, step, 2.0)
    sweep.clock.advance()
    assert watch.check(trial_id, run_id) is True
    assert sweep.intermediate(trial_id) == {0: 2.0, 1: 2.0, 2: 2.0}
    assert watch.reads[trial_id] == 1


def test_interval_steps_are_honoured_when_steps_arrive_in_batches(tmp_path, tracking_uri):
    """With interval_steps=5 the median pruner judges only steps 0, 5, 10...; a batch of steps
    5..8 read at once must still be judged at step 5 (asking once, at step 8, never would)."""
    sweep = Sweep(tmp_path, tracking_uri)
    for rate in (0.5, 0.6, 0.7, 0.8, 0.9):
        sweep.complete_with_curve(good_curve(rate))
    watch = sweep.watch("median", {"n_startup_trials": 5, "interval_steps": 5})
    trial_id, run_id = sweep.start_trial()
    watch.check(trial_id, run_id)
    sweep.log(run_id, 0, 0.5)  # better than every finished trial at step 0
    for step in range(1, 5):
        sweep.log(run_id, step, 2.0)  # bad, but not at a pruning step
    sweep.clock.advance()
    assert watch.check(trial_id, run_id) is False
    for step in range(5, 9):
        sweep.log(run_id, step, 2.0)
    sweep.clock.advance()
    assert watch.check(trial_id, run_id) is True
    assert max(sweep.intermediate(trial_id)) == 5


def test_no_read_within_the_interval(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    watch = sweep.watch("median")
    trial_id, run_id = sweep.start_trial()
    watch.check(trial_id, run_id)
    assert watch.reads[trial_id] == 0

    sweep.log(run_id, 0, 1.0)
    sweep.clock.advance()
    watch.check(trial_id, run_id)
    assert watch.reads[trial_id] == 1
    assert sweep.intermediate(trial_id) == {0: 1.0}

    sweep.log(run_id, 1, 0.9)
    for _ in range(10):
        sweep.clock.advance(INTERVAL / 20)
        assert watch.check(trial_id, run_id) is False
    assert watch.reads[trial_id] == 1
    assert sweep.intermediate(trial_id) == {0: 1.0}  # step 1 waits for the next read

    sweep.clock.advance(INTERVAL / 2)
    watch.check(trial_id, run_id)
    assert watch.reads[trial_id] == 2
    assert sweep.intermediate(trial_id) == {0: 1.0, 1: 0.9}


def test_real_clock_rate_limit(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    spec = EarlyStopping("median", {}, 1.0)
    watch = TrialWatch(sweep.client, sweep.agent_storage, sweep.name, METRIC, spec)
    trial_id, run_id = sweep.start_trial()
    sweep.log(run_id, 0, 1.0)
    watch.check(trial_id, run_id)
    watch.check(trial_id, run_id)
    assert watch.reads[trial_id] == 0
    time.sleep(1.05)
    watch.check(trial_id, run_id)
    assert watch.reads[trial_id] == 1
    assert sweep.intermediate(trial_id) == {0: 1.0}


def test_repeated_steps_keep_the_latest_value_and_nan_is_skipped(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    watch = sweep.watch("median")
    trial_id, run_id = sweep.start_trial()
    watch.check(trial_id, run_id)
    sweep.log(run_id, 0, 5.0, timestamp=1_000)
    sweep.log(run_id, 0, 3.0, timestamp=2_000)
    sweep.log(run_id, 1, float("nan"), timestamp=3_000)
    sweep.log(run_id, 2, 1.0, timestamp=4_000)
    sweep.clock.advance()
    watch.check(trial_id, run_id)
    assert sweep.intermediate(trial_id) == {0: 3.0, 2: 1.0}

    # Below the high-water mark: already reported, never reported again.
    sweep.log(run_id, 1, 0.5, timestamp=5_000)
    sweep.log(run_id, 3, 0.8, timestamp=6_000)
    sweep.clock.advance()
    watch.check(trial_id, run_id)
    assert sweep.intermediate(trial_id) == {0: 3.0, 2: 1.0, 3: 0.8}


def test_finish_reports_the_rest_without_asking(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    for rate in (0.5, 0.6, 0.7, 0.8, 0.9):
        sweep.complete_with_curve(good_curve(rate))
    watch = sweep.watch("median", {"n_startup_trials": 5})
    trial_id, run_id = sweep.start_trial()
    watch.check(trial_id, run_id)
    sweep.log(run_id, 0, 0.5)
    sweep.clock.advance()
    watch.check(trial_id, run_id)
    for step in range(1, 5):
        sweep.log(run_id, step, 9.0)  # bad, but the trial already ended by itself
    watch.finish(trial_id, run_id)
    assert sweep.intermediate(trial_id) == {0: 0.5, 1: 9.0, 2: 9.0, 3: 9.0, 4: 9.0}
    assert sweep.storage.get_trial(trial_id).state == TrialState.RUNNING
    assert watch.watching() == 0

    # A trial that ended before its first read still leaves its whole history.
    other_id, other_run = sweep.start_trial()
    for step in range(3):
        sweep.log(other_run, step, 1.0 - step / 10)
    watch.finish(other_id, other_run)
    assert sweep.intermediate(other_id) == {0: 1.0, 1: 0.9, 2: 0.8}


def test_a_trial_ended_elsewhere_is_left_alone(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    watch = sweep.watch("median")
    trial_id, run_id = sweep.start_trial()
    watch.check(trial_id, run_id)
    sweep.log(run_id, 0, 1.0)
    sweep.storage.set_trial_state_values(trial_id, TrialState.FAIL)  # reclaimed by another agent
    sweep.clock.advance()
    assert watch.check(trial_id, run_id) is False
    assert watch.watching() == 0
    assert sweep.intermediate(trial_id) == {}


def test_an_unreachable_run_does_not_stop_the_trial(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    watch = sweep.watch("median")
    trial_id, _ = sweep.start_trial()
    watch.check(trial_id, "0" * 32)
    sweep.clock.advance()
    assert watch.check(trial_id, "0" * 32) is False
    assert watch.watching() == 1  # tried again at the next interval


def test_reads_grow_only_with_the_interval(tmp_path, tracking_uri):
    """50 running trials polled every 0.1 s for 10 intervals: one history read per trial per
    interval, whatever the number of polls."""
    sweep = Sweep(tmp_path, tracking_uri)
    watch = sweep.watch("median", interval=1.0)
    trials = [sweep.start_trial() for _ in range(50)]
    for _, run_id in trials:
        sweep.log(run_id, 0, 1.0)
    polls = 0
    for _ in range(100):
        for trial_id, run_id in trials:
            watch.check(trial_id, run_id)
            polls += 1
        sweep.clock.advance(0.1)
    assert polls == 5000
    # First sight at t=0, reads at t=1..9 (t=10 is never polled: 100 rounds of 0.1 s).
    assert {watch.reads[trial_id] for trial_id, _ in trials} == {9}
    assert sum(watch.reads.values()) == 50 * 9


@pytest.mark.parametrize(
    ("pruner", "options"),
    [
        ("median", {"n_startup_trials": 4}),
        ("percentile", {"percentile": 25.0, "n_startup_trials": 4}),
        ("successive_halving", {"min_resource": 1, "reduction_factor": 3}),
        ("hyperband", {"min_resource": 1, "max_resource": 12, "reduction_factor": 3}),
        ("threshold", {"upper": 1.5}),
        ("wilcoxon", {"p_threshold": 0.1}),
        ("patient", {"patience": 2}),
        ("patient", {"patience": 0, "wrapped": {"pruner": "median", "options": {"n_startup_trials": 4}}}),
    ],
)
def test_every_pruner_stops_bad_trials_in_a_sweep(tmp_path, tracking_uri, pruner, options):
    """A small sweep run through the watch (pruned trials told PRUNED, the rest completed),
    then bad curves (high and slowly rising): the pruner stops them before their end."""
    sweep = Sweep(tmp_path, tracking_uri)
    watch = sweep.watch(pruner, options)
    rng = random.Random(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(8):
            sweep.run_watched(watch, good_curve(rng.uniform(0.3, 0.9), steps=12))
        stopped = [sweep.run_watched(watch, [2.0 + 0.05 * s for s in range(12)]) for _ in range(4)]
    assert any(step is not None and step < 11 for step in stopped), stopped
    pruned = [t for t in sweep.storage.get_all_trials(sweep.study_id) if t.state == TrialState.PRUNED]
    assert pruned
    for trial in pruned:  # as Optuna's tell records them: the last intermediate value
        assert trial.value == trial.intermediate_values[trial.last_step]


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql", "redis"])
def test_every_optuna_storage(tmp_path, tracking_uri, request, kind):
    """Successive halving writes rung attributes through the study: on every storage kind the
    sweeper supports, bad trials are stopped and the rungs recorded."""
    if kind == "sqlite":
        url = None
    elif kind == "journal":
        url = f"journal://{tmp_path / 'journal.log'}"
    elif kind == "postgresql":
        url = request.getfixturevalue("postgres_db")()
    else:
        url = request.getfixturevalue("redis_url")
    sweep = Sweep(tmp_path, tracking_uri, url=url)
    watch = sweep.watch("successive_halving", {"min_resource": 1, "reduction_factor": 3})
    rng = random.Random(1)
    for _ in range(6):
        sweep.run_watched(watch, good_curve(rng.uniform(0.3, 0.9), steps=10))
    assert sweep.run_watched(watch, [3.0] * 10) is not None
    rungs = [key for t in sweep.storage.get_all_trials(sweep.study_id) for key in t.system_attrs]
    assert "completed_rung_0" in rungs


def test_one_watch_shared_by_worker_threads(tmp_path, tracking_uri):
    """The agent's worker threads share one watch: each trial is read once per interval and
    judged as it would be alone."""
    sweep = Sweep(tmp_path, tracking_uri)
    for rate in (0.5, 0.6, 0.7, 0.8, 0.9):
        sweep.complete_with_curve(good_curve(rate))
    watch = sweep.watch("median", {"n_startup_trials": 5, "n_warmup_steps": 2})
    good = [sweep.start_trial() for _ in range(4)]
    bad = [sweep.start_trial() for _ in range(4)]
    curves = {trial: good_curve(1.5) for trial in good} | {trial: [2.0] * 10 for trial in bad}
    verdicts: dict[int, list[bool]] = {trial_id: [] for trial_id, _ in curves}

    def poll(trial: tuple[int, str]) -> None:
        for _ in range(5):  # several polls per interval, as the await loop makes
            if watch.check(*trial):
                verdicts[trial[0]].append(True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(poll, curves))
        for step in range(5):
            for (_, run_id), curve in curves.items():
                sweep.log(run_id, step, curve[step])
            sweep.clock.advance()
            list(pool.map(poll, curves))
    assert {trial_id: watch.reads[trial_id] for trial_id, _ in curves} == {t: 5 for t, _ in curves}
    assert all(verdicts[trial_id] == [] for trial_id, _ in good)
    assert all(verdicts[trial_id] for trial_id, _ in bad)  # stopped at step 2 and after


def test_maximize_direction_is_respected(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri, direction="maximize")
    for rate in (0.5, 0.6, 0.7, 0.8, 0.9):
        sweep.complete_with_curve([1 - v for v in good_curve(rate)])
    watch = sweep.watch("median", {"n_startup_trials": 5})
    assert sweep.run_watched(watch, [2.0] * 10) is None  # high accuracy-like values: kept
    assert sweep.run_watched(watch, [-5.0] * 10) == 0


def test_a_real_trial_process_is_stopped_as_the_agent_would(tmp_path, tracking_uri):
    """examples/curve.py as a real trial process logging into its run; polled as the agent's
    await loop polls, with the real clock: the watch stops it long before its last epoch, and
    what Optuna holds is the start of what the run logged."""
    sweep = Sweep(tmp_path, tracking_uri)
    for rate in (0.5, 0.6, 0.7, 0.8, 0.9):
        sweep.complete_with_curve(good_curve(rate, steps=200))
    spec = EarlyStopping("median", {"n_startup_trials": 5, "n_warmup_steps": 3}, 0.3)
    watch = TrialWatch(sweep.client, sweep.agent_storage, sweep.name, METRIC, spec)
    trial_id, run_id = sweep.start_trial()
    env = {
        **os.environ,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_TRACKING_URI": with_sqlite_timeout(tracking_uri),
        "MLFLOW_EXPERIMENT_ID": sweep.experiment_id,
    }
    argv = [sys.executable, str(CURVE), "lr=0.0001", "epochs=200", "seconds_per_epoch=0.05"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pruned = False
    try:
        while process.poll() is None:
            if watch.check(trial_id, run_id):
                pruned = True
                break
            time.sleep(0.1)
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=60)
    assert pruned, stderr.decode(errors="replace")[-2000:]
    watch.forget(trial_id)
    assert tell_pruned(sweep.agent_storage, trial_id)
    sweep.client.set_tag(run_id, PRUNED_TAG, "true")
    sweep.client.set_terminated(run_id, "KILLED")

    history = sorted((m.step, m.value) for m in sweep.client.get_metric_history(run_id, METRIC))
    assert 3 < len(history) < 200
    reported = sorted(sweep.intermediate(trial_id).items())
    assert reported == history[: len(reported)]
    assert reported[-1][0] >= 3  # not before the warm-up steps
    trial = sweep.storage.get_trial(trial_id)
    assert trial.state == TrialState.PRUNED
    assert trial.value == reported[-1][1]
    run = sweep.client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags[PRUNED_TAG] == "true"


# ---- telling a pruned trial -----------------------------------------------------------------------


def test_tell_pruned_records_the_last_intermediate_value(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    trial_id, _ = sweep.start_trial()
    sweep.storage.set_trial_intermediate_value(trial_id, 0, 3.0)
    sweep.storage.set_trial_intermediate_value(trial_id, 4, 2.5)
    assert tell_pruned(sweep.agent_storage, trial_id) is True
    trial = sweep.storage.get_trial(trial_id)
    assert trial.state == TrialState.PRUNED
    assert trial.value == 2.5
    assert tell_pruned(sweep.agent_storage, trial_id) is False  # already ended


def test_tell_pruned_without_history_or_with_nan_has_no_value(tmp_path, tracking_uri):
    sweep = Sweep(tmp_path, tracking_uri)
    bare, _ = sweep.start_trial()
    assert tell_pruned(sweep.storage, bare)
    assert sweep.storage.get_trial(bare).value is None
    nan, _ = sweep.start_trial()
    sweep.storage.set_trial_intermediate_value(nan, 0, float("nan"))
    assert pruned_values(sweep.storage.get_trial(nan)) is None
    assert tell_pruned(sweep.storage, nan)
    assert sweep.storage.get_trial(nan).state == TrialState.PRUNED


def test_pruned_values_match_optunas_tell(tmp_path):
    """The same trial told PRUNED by Optuna itself gets the value `pruned_values` computes."""
    study = optuna.create_study(storage=open_optuna_storage(f"sqlite:///{tmp_path / 'o.db'}"))
    trial = study.ask()
    trial.report(4.0, 1)
    trial.report(3.5, 7)
    frozen = study.trials[0]
    expected = pruned_values(frozen)
    study.tell(trial, state=TrialState.PRUNED)
    assert study.trials[0].values == expected == [3.5]


# ---- config -------------------------------------------------------------------------------------


def parse(raw, objective_count: int = 1):
    return parse_early_stopping(raw, path="sweep.yaml", objective_count=objective_count)


def test_absent_is_none_and_defaults_apply():
    assert parse(None) is None
    spec = parse({"pruner": "median"})
    assert spec == EarlyStopping("median", {}, DEFAULT_INTERVAL)
    assert spec.describe() == {"pruner": "median", "options": {}}
    assert parse({"pruner": "hyperband", "interval": 1}).interval == 1.0


PRUNER_OPTIONS = {
    "median": {"n_startup_trials": 3, "n_warmup_steps": 2, "interval_steps": 1, "n_min_trials": 1},
    "percentile": {"percentile": 25.0, "n_startup_trials": 3},
    "successive_halving": {"min_resource": "auto", "reduction_factor": 3},
    "hyperband": {"min_resource": 1, "max_resource": 27, "reduction_factor": 3},
    "threshold": {"lower": 0.0, "upper": 1.0},
    "wilcoxon": {"p_threshold": 0.05, "n_startup_steps": 3},
    "patient": {
        "patience": 3,
        "min_delta": 0.01,
        "wrapped": {"pruner": "percentile", "options": {"percentile": 10}},
    },
}


def test_every_pruner_name_is_tested():
    assert set(PRUNER_OPTIONS) == set(PRUNERS)


@pytest.mark.parametrize("name", sorted(PRUNER_OPTIONS))
def test_every_pruner_constructs(name):
    spec = parse({"pruner": name, "options": PRUNER_OPTIONS[name], "interval": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = spec.make_pruner()
    assert isinstance(pruner, PRUNERS[name].cls)
    assert pruner is not spec.make_pruner()  # a fresh one each time: pruners keep state
    assert spec.describe()["pruner"] == name


def test_patient_wraps_the_given_pruner_or_none():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = parse({"pruner": "patient", "options": {"patience": 2}}).make_pruner()
        wrapped = parse(
            {"pruner": "patient", "options": {"patience": 2, "wrapped": {"pruner": "median"}}}
        ).make_pruner()
    assert alone._wrapped_pruner is None
    assert isinstance(wrapped._wrapped_pruner, optuna.pruners.MedianPruner)
    spec = parse({"pruner": "patient", "options": {"patience": 2, "wrapped": {"pruner": "median"}}})
    spec.make_pruner()
    assert spec.describe() == {
        "pruner": "patient",
        "options": {"patience": 2, "wrapped": {"pruner": "median", "options": {}}},
    }


@pytest.mark.parametrize(
    ("raw", "key", "fragments"),
    [
        ("median", "early_stopping", ["expected a mapping"]),
        ({}, "early_stopping.pruner", ["missing", "median, percentile"]),
        ({"pruner": "medain"}, "early_stopping.pruner", ["unknown pruner 'medain'", "did you mean 'median'"]),
        ({"pruner": "hyperbnd"}, "early_stopping.pruner", ["did you mean 'hyperband'"]),
        ({"pruner": "median", "intervall": 3}, "early_stopping.intervall", ["did you mean 'interval'"]),
        ({"pruner": "median", "options": [1]}, "early_stopping.options", ["expected a mapping"]),
        (
            {"pruner": "median", "options": {"n_startup": 3}},
            "early_stopping.options.n_startup",
            [
                "unknown option of the median pruner",
                "did you mean 'n_startup_trials'",
                "valid: n_startup_trials",
            ],
        ),
        (
            {"pruner": "median", "options": {"n_startup_trials": "five"}},
            "early_stopping.options.n_startup_trials",
            ["expected a whole number", "'five'"],
        ),
        (
            {"pruner": "median", "options": {"n_startup_trials": 2.5}},
            "early_stopping.options.n_startup_trials",
            ["expected a whole number"],
        ),
        (
            {"pruner": "median", "options": {"n_startup_trials": -1}},
            "early_stopping.options",
            ["median pruner refuses", "cannot be negative"],
        ),
        ({"pruner": "percentile"}, "early_stopping.options.percentile", ["missing"]),
        (
            {"pruner": "percentile", "options": {"percentile": 150}},
            "early_stopping.options",
            ["between 0 and 100"],
        ),
        ({"pruner": "threshold"}, "early_stopping.options", ["lower or upper"]),
        (
            {"pruner": "threshold", "options": {"lower": 2.0, "upper": 1.0}},
            "early_stopping.options",
            ["lower should be smaller"],
        ),
        (
            {"pruner": "hyperband", "options": {"reduction_factor": 1}},
            "early_stopping.options",
            ["reduction_factor"],
        ),
        (
            {"pruner": "hyperband", "options": {"min_resource": 5, "max_resource": 2}},
            "early_stopping.options",
            ["max_resource"],
        ),
        (
            {"pruner": "successive_halving", "options": {"min_resource": "soon"}},
            "early_stopping.options",
            ["min_resource"],
        ),
        ({"pruner": "wilcoxon", "options": {"p_threshold": 2}}, "early_stopping.options", ["p_threshold"]),
        ({"pruner": "patient"}, "early_stopping.options.patience", ["missing"]),
        (
            {"pruner": "patient", "options": {"patience": 1, "wrapped": "median"}},
            "early_stopping.options.wrapped",
            ["expected a mapping"],
        ),
        (
            {"pruner": "patient", "options": {"patience": 1, "wrapped": {"pruner": "median", "interval": 3}}},
            "early_stopping.options.wrapped.interval",
            ["unknown key"],
        ),
        (
            {
                "pruner": "patient",
                "options": {"patience": 1, "wrapped": {"pruner": "median", "options": {"x": 1}}},
            },
            "early_stopping.options.wrapped.options.x",
            ["unknown option of the median pruner"],
        ),
        ({"pruner": "median", "interval": 0}, "early_stopping.interval", ["positive number"]),
        ({"pruner": "median", "interval": -3}, "early_stopping.interval", ["positive number"]),
        ({"pruner": "median", "interval": "10s"}, "early_stopping.interval", ["positive number"]),
        ({"pruner": "median", "interval": True}, "early_stopping.interval", ["positive number"]),
        ({"pruner": "median", "interval": float("inf")}, "early_stopping.interval", ["positive number"]),
    ],
)
def test_config_errors_name_the_key(raw, key, fragments):
    with pytest.raises(ConfigError) as info:
        parse(raw)
    assert info.value.key == key
    assert info.value.path == "sweep.yaml"
    assert info.value.exit_code == 2
    for fragment in fragments:
        assert fragment in str(info.value)


def test_several_objectives_or_none_is_an_error():
    with pytest.raises(ConfigError, match="one objective only") as info:
        parse({"pruner": "median"}, objective_count=2)
    assert info.value.key == "early_stopping"
    with pytest.raises(ConfigError, match="spec.metric"):
        parse({"pruner": "median"}, objective_count=0)
