"""The bar's counts: this agent's trials as they settle, every agent's from the storage."""

from __future__ import annotations

import threading

from mlflow_sweeper.agent.counts import SweepCounts
from mlflow_sweeper.coordination.tallies import Progress
from mlflow_sweeper.progress import SweepProgress


def tallies(complete=0, running=0, failed=0, pruned=0, best=None) -> Progress:
    return Progress(
        budget=20,
        complete=complete,
        running=running,
        waiting=0,
        failed_for_good=failed,
        best=best,
        pruned=pruned,
    )


class Best:
    def __init__(self, value: float):
        self.value = value


def counts(direction: str = "maximize", single_objective: bool = True) -> SweepCounts:
    return SweepCounts(SweepProgress(name="exp/s", total=20, direction=direction), single_objective)


def test_own_trials_count_at_once_and_only_a_better_value_is_an_improvement():
    c = counts()
    assert c.done(3.0) is True
    assert c.done(2.0) is False
    c.failed()
    c.pruned()
    p = c.progress
    assert (p.done, p.done_here, p.failed, p.pruned, p.best) == (2, 2, 1, 1, 3.0)


def test_sync_shows_every_agents_trials_and_their_running_ones_beside_ours():
    c = counts()
    c.running_here(2)
    c.sync(lambda: tallies(complete=7, running=5, failed=1, pruned=2, best=Best(9.0)))
    p = c.progress
    assert (p.done, p.failed, p.pruned, p.running, p.best) == (7, 1, 2, 5, 9.0)
    c.running_here(1)  # one of ours ended: the other agents' 3 still run
    assert p.running == 4


def test_a_trial_settled_while_the_storage_is_read_is_not_lost():
    """The read started before this agent's trial settled, so its tallies miss it: the count must
    not step back from what the bar already showed."""
    c = counts()
    c.done(1.0)
    settled_during_read = threading.Event()

    def read() -> Progress:
        c.done(2.0)  # another worker settles a trial while the storage is being read
        settled_during_read.set()
        return tallies(complete=1)  # the storage as it was when the read began

    c.sync(read)
    assert settled_during_read.is_set()
    assert c.progress.done == 2


def test_several_objectives_show_no_best_value():
    c = counts(single_objective=False)
    c.sync(lambda: tallies(complete=3, best=Best(1.0)))
    assert c.progress.best is None


def test_points_queued_again_are_no_longer_failed():
    c = counts()
    c.sync(lambda: tallies(failed=3))
    c.failed_again_owed(2)
    assert c.progress.failed == 1
    c.failed_again_owed(5)
    assert c.progress.failed == 0


def test_the_bar_counts_a_pruned_or_failed_point_as_done():
    """Done = complete + pruned + failed for good: a finished sweep never reads 14/20 done."""
    progress = SweepProgress(name="exp/s", total=20, done=12, pruned=6, failed=2)
    assert progress.counts().startswith("20/20 done, 0 running, 2 failed, 6 pruned")
    assert progress.status_text(short=True).startswith("20/20 done, 2 failed, 6 pruned")


def ended_trial(number: int, second: int, value: float | None, state=None, slot=None, user_attrs=None):
    import datetime as dt

    from optuna.trial import FrozenTrial, TrialState

    from mlflow_sweeper.coordination.names import SLOT

    state = state or TrialState.COMPLETE
    return FrozenTrial(
        number=number, state=state, value=value if state == TrialState.COMPLETE else None,
        datetime_start=dt.datetime(2026, 1, 1), datetime_complete=dt.datetime(2026, 1, 1, 0, 0, second),
        params={}, distributions={}, user_attrs=user_attrs or {}, intermediate_values={}, trial_id=number,
        system_attrs={SLOT: number if slot is None else slot},
    )  # fmt: skip


def test_agents_agree_on_the_step_of_each_point_of_the_best_so_far_curve():
    """The step is where the trial ended among all trials, whichever agent asks and whenever, so
    points written out of order still make a curve that never steps back."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from mlflow_sweeper.coordination.tallies import best_so_far_step

    # Numbered in the order they were created, ended in another order (by the seconds).
    trials = [
        ended_trial(0, 3, 0.5),
        ended_trial(1, 1, 0.2),
        ended_trial(2, 2, None, TrialState.FAIL),
        ended_trial(3, 5, 0.9),
        ended_trial(4, 4, 0.4),
        ended_trial(5, 6, 0.9),  # as good as an earlier one: no point of its own
    ]
    up = StudyDirection.MAXIMIZE
    steps = {t.number: best_so_far_step(trials, t.number, up) for t in trials}
    assert steps == {1: 1, 2: None, 0: 3, 4: None, 3: 5, 5: None}
    down = {t.number: best_so_far_step(trials, t.number, StudyDirection.MINIMIZE) for t in trials}
    assert down == {1: 1, 2: None, 0: None, 4: None, 3: None, 5: None}
    running = trials[:3]  # trial 3 had not ended yet when an agent read the trials
    assert best_so_far_step(running, 3, up) is None


def test_the_best_so_far_step_counts_points_ended_not_attempts():
    """An attempt to be retried, or one cancelled by Ctrl-C, ends no point: the step is how many
    points had ended, as the description counts them ("3/3 trials ended"), never more."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from mlflow_sweeper.coordination.names import REASON, WARM_ATTR
    from mlflow_sweeper.coordination.tallies import best_so_far_step

    fail = TrialState.FAIL
    trials = [
        ended_trial(0, 1, None, fail, slot=0, user_attrs={REASON: "interrupted (Ctrl-C)"}),
        ended_trial(1, 2, None, fail, slot=1),  # retried: trial 3
        ended_trial(2, 3, None, fail, slot=2),  # failed for good: a point ended
        ended_trial(3, 4, 0.4, slot=1),
        ended_trial(4, 5, 0.6, slot=0),  # the interrupted point, resumed
        ended_trial(5, 0, 0.9, slot=99, user_attrs={WARM_ATTR: "sweep exp/old"}),  # holds no point
    ]
    trials[5].system_attrs.clear()
    up = StudyDirection.MAXIMIZE
    assert best_so_far_step(trials, 3, up) is None  # the earlier result was better
    trials[5].values = [0.1]
    assert best_so_far_step(trials, 3, up) == 2  # point 2 failed for good, then point 1
    assert best_so_far_step(trials, 4, up) == 3


def test_a_trial_being_claimed_is_not_counted_as_another_agents():
    """A claim makes the trial RUNNING in the storage before the worker counts it running here: a
    sync in between took it for another agent's, and the bar showed one running too many until
    the next sync (3 running with -j 2)."""
    c = counts()
    c.running_here(1)
    c.claiming(+1)
    c.sync(lambda: tallies(running=2))  # ours: the one running and the one just claimed
    c.running_here(2, claimed=True)
    assert c.progress.running == 2

    c.running_here(1)  # one ended; the worker claims the next while the storage is read
    c.sync(lambda: (c.claiming(+1), tallies(running=2))[1])
    c.running_here(2, claimed=True)
    assert c.progress.running == 2
