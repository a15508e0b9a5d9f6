"""The parent's description as a pure function of a sweep's view, the UI links, and `register:`
in the config: in-process, no trial runs."""

from __future__ import annotations

import re
import threading
import time
from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from mlflow_sweeper.config import load_config
from mlflow_sweeper.config.register import Registration
from mlflow_sweeper.constraints import ATTR_PREFIX
from mlflow_sweeper.errors import ConfigError
from mlflow_sweeper.ui.description import SweepView, describe
from mlflow_sweeper.ui.links import link_lines, ui_links

BASE = {
    "experiment": "exp",
    "sweep_name": "s1",
    "command": "python train.py",
    "parameters": {"x": list(range(15)), "y": [10, 20]},
    "spec": {"direction": "maximize", "metric": "score"},
}
TWO = {"metrics": [{"name": "score", "direction": "maximize"}, {"name": "cost", "direction": "minimize"}]}


def config_of(tmp_path, **keys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**BASE, **keys}, sort_keys=False))
    return load_config(path)


def trials_of(values: list, states=None) -> list:
    dists = {"x": IntDistribution(0, 20)}
    made = []
    for number, value in enumerate(values):
        state = (states or {}).get(number, TrialState.COMPLETE)
        trial = create_trial(
            params={"x": number},
            distributions=dists,
            values=None if state != TrialState.COMPLETE else (value if isinstance(value, list) else [value]),
            state=state,
            user_attrs={"mlflow_run_id": f"run{number}"},
        )
        trial.number = number
        made.append(trial)
    return made


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\| \[\d+\]", line)]


def test_a_running_single_objective_sweep_shows_counts_best_and_top_ten(tmp_path):
    config = config_of(tmp_path)
    values = [float(v) for v in (3, 9, 1, 7, 12, 5, 2, 8, 4, 6, 11, 10, 0)]
    trials = trials_of(values + [0.0, 0.0], states={13: TrialState.RUNNING, 14: TrialState.PRUNED})
    text = describe(SweepView(config, trials, "7", "parent", budget=30, failed_for_good=0))
    counts = "14/30 trials ended (13 complete, 1 pruned, 0 failed), 1 running"
    assert text.startswith(f"**Sweep `exp/s1`: running.** {counts}")
    assert "**Best score (maximize): 12** in [trial 4](#/experiments/7/runs/run4): `x` = 4" in text
    rows = table_rows(text)
    assert len(rows) == 10
    shown = [float(row.split("|")[2]) for row in rows]
    assert shown == sorted(values, reverse=True)[:10]
    assert "when the sweep completes" in text and "Parameter importances" not in text


def test_a_closed_sweep_shows_importances_report_registration_and_why_it_stopped(tmp_path):
    config = config_of(tmp_path)
    view = SweepView(
        config, trials_of([1.0, 5.0]), "7", "parent", state="complete", stopped="a trial reached the target",
        importances={"x": 0.8, "y": 0.2}, report_path="report/report.html", registered="digits/3",
        warnings=("careful",),
    )  # fmt: skip
    text = describe(view)
    assert text.startswith("**Sweep `exp/s1`: complete.**")
    assert "**Stopped early:** a trial reached the target." in text
    assert "| x | 0.8 |" in text and text.index("| x | 0.8 |") < text.index("| y | 0.2 |")
    assert "[report/report.html](#/experiments/7/runs/parent/artifacts/report/report.html)" in text
    assert "Registered as model **digits** version **3**." in text
    assert "> **Warning:** careful" in text


def test_minimizing_ranks_low_values_first_and_infeasible_trials_are_left_out(tmp_path):
    config = config_of(tmp_path, spec={"direction": "minimize", "metric": "score"})
    trials = trials_of([4.0, 1.0, 2.0])
    trials[1].system_attrs[f"{ATTR_PREFIX}score <= 0.5"] = 0.5  # violates its constraint, as Optuna keeps it
    text = describe(SweepView(config, trials, "7", "parent"))
    assert "**Best score (minimize): 2** in [trial 2]" in text
    assert [row.split("|")[1].strip() for row in table_rows(text)] == [
        "[2](#/experiments/7/runs/run2)",
        "[0](#/experiments/7/runs/run0)",
    ]


def test_with_no_feasible_trial_there_is_no_best(tmp_path):
    config = config_of(
        tmp_path, spec={"direction": "minimize", "metric": "score", "constraints": ["lat <= 1"]}
    )
    trials = trials_of([4.0])
    trials[0].system_attrs[f"{ATTR_PREFIX}lat <= 1"] = 3.0
    text = describe(SweepView(config, trials, "7", "parent"))
    assert "**Best score:** no feasible trial yet (minimize)." in text and not table_rows(text)


def test_several_objectives_show_the_pareto_front_instead_of_a_best(tmp_path):
    config = config_of(tmp_path, spec=TWO)
    trials = trials_of([[5.0, 5.0], [4.0, 1.0], [3.0, 2.0], [6.0, 9.0]])  # trial 2 is dominated by 1
    text = describe(SweepView(config, trials, "7", "parent"))
    assert "Best" not in text
    assert "### Pareto front: 3 trials" in text
    assert "| trial | score | cost | x |" in text
    numbers = [row.split("|")[1].strip() for row in table_rows(text)]
    assert numbers == [f"[{n}](#/experiments/7/runs/run{n})" for n in (3, 0, 1)]


def test_a_sweep_without_trials_or_objective_still_reads_well(tmp_path):
    config = config_of(tmp_path)
    assert "**Best score:** none yet (maximize)." in describe(SweepView(config, [], "7", "parent"))
    no_spec = config_of(tmp_path, spec=None)
    text = describe(SweepView(no_spec, trials_of([0.0]), "7", "parent"))
    assert "Best" not in text and "1 complete" in text


def test_links_are_printed_only_for_a_tracking_server():
    assert ui_links("sqlite:///mlflow.db", "1", "abc") == {}
    assert ui_links("file:///tmp/x", "1", "abc") == {}
    links = ui_links("http://host:5000/", "4", "abc")
    assert links == {
        "parent_url": "http://host:5000/#/experiments/4/runs/abc",
        "runs_url": "http://host:5000/#/experiments/4/runs",
    }
    assert link_lines(links)[1].endswith("http://host:5000/#/experiments/4/runs")
    # credentials in the URI: a link that works (the browser asks for them), with none in it
    assert (
        ui_links("https://bob:s3cret@host:5000", "4", "abc")["runs_url"]
        == "https://host:5000/#/experiments/4/runs"
    )


def test_register_is_read_with_its_defaults(tmp_path):
    config = config_of(tmp_path, register={"model_name": "digits"})
    assert config.register == Registration("digits", "model", None)
    config = config_of(tmp_path, register={"model_name": "digits", "artifact_path": "clf/", "alias": "best"})
    assert config.register == Registration("digits", "clf", "best")
    assert config_of(tmp_path).register is None


@pytest.mark.parametrize(
    ("register", "spec", "message"),
    [
        ({"artifact_path": "m"}, None, "register.model_name: missing"),
        ({"model_name": "m", "aliass": "x"}, None, "did you mean 'alias'"),
        ({"model_name": ""}, None, "register.model_name: expected a non-empty string"),
        ("digits", None, "expected a mapping"),
        ({"model_name": "m"}, TWO, "several objectives"),
        ({"model_name": "team/digits"}, None, "register.model_name: Invalid model name"),
        ({"model_name": "m", "alias": "latest"}, None, "register.alias: 'latest' is reserved"),
        ({"model_name": "m", "alias": "v3"}, None, "register.alias: 'v3' is reserved"),
    ],
)
def test_a_bad_register_is_refused(tmp_path, register, spec, message):
    with pytest.raises(ConfigError) as caught:
        config_of(tmp_path, register=register, **({"spec": spec} if spec else {}))
    assert message in str(caught.value)


def test_descriptions_are_the_same_for_the_same_view(tmp_path):
    config = config_of(tmp_path)
    trials = trials_of([1.0, 2.0])
    first, again = SweepView(config, trials, "1", "p"), SweepView(config, list(trials), "1", "p")
    assert describe(first) == describe(again)
    assert optuna.__version__  # the trials above are Optuna's own FrozenTrials


class _Study:
    """A sweep's study as the live description reads it (a test double of our own interface)."""

    budget = 4
    exhausted_seen = False  # slots left: an agent leaving at --count

    def __init__(self, trials):
        self.trials_now = trials
        self.closing = False

    def close_begun(self):
        return self.closing

    def trials(self):
        return self.trials_now

    def failed_for_good(self, trials):
        return []

    def target_reached(self):
        return False


class _Client:
    def __init__(self):
        self.tags = {}

    def set_tag(self, run_id, key, value):
        self.tags[key] = value


def _live(tmp_path, study, client, progress):
    from mlflow_sweeper.ui.live import LiveDescription

    recorder = SimpleNamespace(client=client, experiment_id="7")
    return LiveDescription(config_of(tmp_path), study, recorder, "parent", progress)


def test_an_agent_that_leaves_writes_the_description_as_it_leaves_it(tmp_path):
    """Even when its writer has just written and waits (a slow write is not repeated at once)."""
    study, client = _Study([]), _Client()
    progress = SimpleNamespace(done=0, failed=0, pruned=0, running=1, best=None)
    live = _live(tmp_path, study, client, progress)
    live.write()
    live._took = 60.0  # the writer now waits 50 x 60 s before it looks again
    live._written = live._counts()
    live.start()
    study.trials_now = trials_of([11.0])
    progress.done, progress.running, progress.best = 1, 0, 11.0
    live.stop()
    assert "1/4 trials ended (1 complete" in client.tags["mlflow.note.content"]


def test_a_write_the_writer_dropped_as_the_agent_left_is_made_by_the_leaving_agent(tmp_path, monkeypatch):
    """The writer's thread reads the sweep, then finds the agent leaving and drops its write: the
    counts it read were never written, so the leaving agent writes them (`--count` left the
    description at its first trial's start)."""
    from mlflow_sweeper.ui import live as live_module

    monkeypatch.setattr(live_module, "BEST_GAP", 0.0)
    study, client = _Study(trials_of([5.0])), _Client()
    progress = SimpleNamespace(done=1, failed=0, pruned=0, running=0, best=5.0)
    live = _live(tmp_path, study, client, progress)
    read = live_module.read_view

    def read_while_the_agent_leaves(*args, **kwargs):
        live._stop.set()  # stop() comes while the thread reads the trials
        return read(*args, **kwargs)

    monkeypatch.setattr(live_module, "read_view", read_while_the_agent_leaves)
    live.new_best()
    live._loop()  # the thread's pass: its write is dropped
    assert client.tags == {} and live._written is None
    monkeypatch.setattr(live_module, "read_view", read)
    live.stop()
    assert "1/4 trials ended (1 complete" in client.tags["mlflow.note.content"]


class _SlowClient(_Client):
    """A tracking store whose writes wait for `release` (a SQLite store waits up to 20 s for a
    lock held by another process); every write is recorded in order."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.order: list[str] = []

    def set_tag(self, run_id, key, value):
        self.release.wait(10)
        super().set_tag(run_id, key, value)
        self.order.append(value.split("**")[1])


def test_no_write_of_the_writer_lands_after_it_was_stopped(tmp_path, monkeypatch):
    """A write in flight when the agent leaves is waited for, however long the store takes (the
    join gives up sooner), so the closer's description, written next, is the last word."""
    from mlflow_sweeper.ui import live as live_module

    monkeypatch.setattr(live_module, "BEST_GAP", 0.0)
    monkeypatch.setattr(live_module, "JOIN_SECONDS", 0.1)
    study, client = _Study(trials_of([3.0])), _SlowClient()
    progress = SimpleNamespace(done=1, failed=0, pruned=0, running=1, best=3.0)
    live = _live(tmp_path, study, client, progress)
    live.start()
    live.new_best()
    time.sleep(0.5)  # the writer is inside set_tag now, waiting for the store
    threading.Timer(0.5, client.release.set).start()
    study.exhausted_seen = True  # all slots taken: this agent leaves the last word to the closer
    live.stop()
    client.set_tag("parent", "mlflow.note.content", "**Sweep `exp/s1`: complete.**")
    time.sleep(0.3)
    assert client.order == ["Sweep `exp/s1`: running.", "Sweep `exp/s1`: complete."]


def test_nothing_is_written_once_an_agent_closes_the_sweep(tmp_path):
    """Another agent's closer: neither the writer's thread nor a leaving agent writes after it."""
    study, client = _Study(trials_of([3.0])), _Client()
    progress = SimpleNamespace(done=1, failed=0, pruned=0, running=0, best=3.0)
    live = _live(tmp_path, study, client, progress)
    live.write(live=True)
    assert "running" in client.tags["mlflow.note.content"]
    client.tags.clear()
    study.closing = True
    live.write(live=True)
    live.stop(state="interrupted")
    assert client.tags == {}


def test_earlier_results_are_counted_as_such(tmp_path):
    """An earlier result that holds a point of the budget (a grid's) counts in it; one beside the
    budget (TPE's history) does not, as `status` counts them."""
    from mlflow_sweeper.coordination.names import SLOT

    trials = trials_of([3.0, 5.0, 4.0])
    trials[0].user_attrs["warm_start"] = "sweep:exp/s0"
    trials[0].system_attrs = {SLOT: 1}
    trials[2].user_attrs["warm_start"] = "sweep:exp/s0"
    text = describe(SweepView(config_of(tmp_path), trials, "7", "parent", budget=2))
    assert (
        "2/2 trials ended (2 complete, 0 pruned, 0 failed; 1 of them earlier results (warm start), not run "
        "here; and 1 earlier result (warm start) beside the budget)"
    ) in text


def test_an_earlier_result_links_to_its_run_in_its_own_experiment(tmp_path):
    trials = trials_of([3.0, 5.0])
    trials[1].user_attrs.update({"warm_start": "sweep:older/s0", "warm_start_experiment": "3"})
    text = describe(SweepView(config_of(tmp_path), trials, "7", "parent", budget=2))
    assert "in [trial 1](#/experiments/3/runs/run1)" in text  # the best, brought in from `older`
    assert table_rows(text)[:2] == [
        "| [1](#/experiments/3/runs/run1) | 5 | 1 |",
        "| [0](#/experiments/7/runs/run0) | 3 | 0 |",
    ]


def test_failed_points_that_will_run_again_are_counted_as_such(tmp_path):
    """After a fail_fast stop, say: the counts say how many points failed and wait for the resume."""
    from mlflow_sweeper.coordination.names import SLOT

    states = {0: TrialState.FAIL, 1: TrialState.FAIL, 2: TrialState.WAITING}
    trials = trials_of([None, None, None, 4.0], states=states)
    for slot, trial in zip((0, 1, 0, 2), trials, strict=True):
        trial.system_attrs = {SLOT: slot}
    view = SweepView(config_of(tmp_path), trials, "7", "parent", budget=4, failed_for_good=1, state="stopped")
    text = describe(view)
    counts = "(1 complete, 0 pruned, 1 failed; 1 more point failed and will be retried)"
    assert f"**Sweep `exp/s1`: stopped early.** 2/4 trials ended {counts}" in text


def test_infeasible_points_and_results_outside_the_constraints_are_said_apart_from_the_rest(tmp_path):
    """As `status` says them: a failed point that is infeasible (out of memory, say) is a result,
    and a complete trial outside `spec.constraints` is one that cannot be the best."""
    from mlflow_sweeper.coordination.names import INFEASIBLE, SLOT

    spec = {"direction": "minimize", "metric": "score", "constraints": ["lat <= 1"]}
    trials = trials_of([4.0, 1.0, 2.0, None], states={3: TrialState.FAIL})
    for slot, trial in enumerate(trials):
        trial.system_attrs = {SLOT: slot, f"{ATTR_PREFIX}lat <= 1": 3.0 if slot in (1, 2) else 0.0}
    trials[3].user_attrs[INFEASIBLE] = "CUDA out of memory"
    view = SweepView(config_of(tmp_path, spec=spec), trials, "7", "parent", budget=4, failed_for_good=1)
    text = describe(view)
    counts = "(3 complete (2 not feasible: outside spec.constraints), 0 pruned, 1 failed (1 infeasible))"
    assert f"4/4 trials ended {counts}" in text, text
    assert "### Top 1 of 1 feasible" in text and len(table_rows(text)) == 1
