"""Warm start when the agent that created the study died before recording the parent run: the
agent that takes over the parent enters the earlier results, each once. In process, real
SQLite stores."""

from __future__ import annotations

import logging

from conftest import write_config
from mlflow.tracking import MlflowClient

from mlflow_sweeper.config import load_config
from mlflow_sweeper.coordination import SweepStudy, agent_id, parent_election
from mlflow_sweeper.coordination.claiming import warm_slots
from mlflow_sweeper.opening import open_sweep
from mlflow_sweeper.search.algorithms import PointSource
from mlflow_sweeper.storages import open_optuna_storage
from mlflow_sweeper.tracking_store import first_records
from mlflow_sweeper.warmstart.collect import WarmStart
from mlflow_sweeper.warmstart.entering import WARM_ATTR, enter, gather


def _earlier_runs(tracking_uri: str) -> list[str]:
    """Two runs that fit the grid and one that does not, tagged for the filter string."""
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("exp")
    ids = []
    for x, y in ((1, 10), (2, 20), (9, 10)):
        run = client.create_run(experiment_id, tags={"kind": "old"})
        client.log_param(run.info.run_id, "x", x)
        client.log_param(run.info.run_id, "y", y)
        client.log_metric(run.info.run_id, "score", x + y)
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def test_the_agent_taking_over_the_parent_enters_the_earlier_results_once(tmp_path, monkeypatch, caplog):
    path = write_config(tmp_path, warm_start=[{"runs": "tags.kind = 'old'"}])
    config = load_config(path)
    uri = config.mlflow_storage
    fitting = _earlier_runs(uri)[:2]
    # The creator: the study created, one earlier result entered, then it died (no parent run).
    creator = SweepStudy(open_optuna_storage(config.optuna_storage), config, PointSource(config), "dead")
    gathered = gather(config, uri, creator.source)
    assert sorted(t.run_id for t in gathered.trials) == sorted(fitting) and gathered.misfits == 1
    assert creator.create_or_find(first_records(uri))
    enter(creator.store, creator.study_id, creator.source, WarmStart(gathered.trials[:1], 0))

    monkeypatch.setattr(parent_election, "PARENT_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(parent_election, "PARENT_NOTICE_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING, logger=parent_election.__name__):
        opened = open_sweep(config, agent="next")
    assert not opened.created and opened.parent_id
    said = [r.getMessage() for r in caplog.records]
    assert any("waiting up to 0 s for the agent that created it to record its parent run" in m for m in said)
    assert any("has no parent run (none recorded within 0 s): creating it" in m for m in said)
    warm = [t for t in opened.study.trials() if WARM_ATTR in t.user_attrs]
    assert sorted(t.user_attrs["mlflow_run_id"] for t in warm) == sorted(fitting)  # each once
    assert opened.warm_summary and "2 earlier result(s)" in opened.warm_summary
    # both grid points (x=1, y=10: slot 0; x=2, y=20: slot 3) are held, so no agent runs them
    assert set(warm_slots(opened.study.store, opened.study.study_id)) == {0, 3}


def _dead_agent_here() -> str:
    """The id of an agent of this host that has died (its process has ended)."""
    import socket
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:deadbeef"


def test_a_creator_that_died_on_this_host_is_taken_over_at_once_by_exactly_one_agent(tmp_path, monkeypatch):
    """Ctrl-C between creating the study and recording the parent run: the next agents on its host
    see at once that it is gone (no minute's wait), and exactly one of them creates the parent."""
    import threading
    import time

    config = load_config(write_config(tmp_path))
    uri = config.mlflow_storage
    storage = open_optuna_storage(config.optuna_storage)
    creator = SweepStudy(storage, config, PointSource(config), _dead_agent_here())
    assert creator.create_or_find(first_records(uri))
    monkeypatch.setattr(parent_election, "PARENT_WAIT_SECONDS", 60.0)
    opened, errors = [], []

    def join() -> None:
        try:
            opened.append(open_sweep(config, agent=agent_id()))
        except Exception as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=join) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert time.monotonic() - started < 30, "waited for the dead creator"
    assert len({o.parent_id for o in opened}) == 1 and len(opened) == 3
    parents = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("exp").experiment_id], "tags.`sweeper.role` = 'parent'"
    )
    assert [p.info.run_id for p in parents] == [opened[0].parent_id]


def test_an_agent_elected_to_take_over_that_died_too_gives_way_to_the_next_round(tmp_path, monkeypatch):
    """The creator died, then the agent elected to create the parent in its place died before it
    did (its round's study left behind): the next agent is elected in the next round."""
    import time

    from mlflow_sweeper.coordination.companions import create_companion
    from mlflow_sweeper.coordination.names import AGENT, TAKEOVER_SINCE, takeover_study_name

    config = load_config(write_config(tmp_path))
    uri = config.mlflow_storage
    creator = SweepStudy(
        open_optuna_storage(config.optuna_storage), config, PointSource(config), _dead_agent_here()
    )
    assert creator.create_or_find(first_records(uri))
    for round_, (agent, since) in enumerate(
        [(_dead_agent_here(), time.time()), ("elsewhere:1:gone", time.time() - 120)], start=1
    ):  # one died on this host; one elsewhere was elected two minutes ago
        study_id = create_companion(
            creator.store, takeover_study_name(config.identity, round_), config.identity
        )
        creator.store.set_study_system_attr(study_id, AGENT, agent)
        creator.store.set_study_system_attr(study_id, TAKEOVER_SINCE, since)
    monkeypatch.setattr(parent_election, "PARENT_WAIT_SECONDS", 60.0)
    started = time.monotonic()
    opened = open_sweep(config, agent=agent_id())
    assert opened.parent_id and time.monotonic() - started < 30
    names = {s.study_name for s in opened.study.store.get_all_studies()}
    assert takeover_study_name(config.identity, 3) in names

    from mlflow_sweeper.admin import delete_sweep

    assert delete_sweep(config).study_deleted
    assert not {s.study_name for s in opened.study.store.get_all_studies()}  # the rounds went too
