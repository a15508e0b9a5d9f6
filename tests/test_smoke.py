"""The quickest end-to-end check: a command-mode grid on SQLite, every point once, nested."""

from pathlib import Path

from conftest import mlflow_runs, optuna_trials, read_records, run_cli, write_config


def test_grid_command_sweep_runs_every_point_once(tmp_path):
    record = tmp_path / "records.jsonl"
    config = write_config(
        tmp_path, fresh_store=True, parameters={"x": [1, 2, 3], "y": [10, 20], "record": str(record)}
    )
    result = run_cli("sweep", config, "-j", "2", cwd=tmp_path, fresh=True)  # as a user starts it
    assert result.returncode == 0, result.stderr

    seen = sorted((r["params"]["x"], r["params"]["y"]) for r in read_records(record))
    assert seen == sorted((str(x), str(y)) for x in (1, 2, 3) for y in (10, 20))

    runs = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parents = [r for r in runs if r.data.tags.get("sweeper.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("sweeper.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 6
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in trials)
    assert all(r.info.status == "FINISHED" for r in trials)
    best = max(trials, key=lambda r: r.data.metrics["score"])
    assert parents[0].data.tags["sweeper.best_run_id"] == best.info.run_id
    assert parents[0].data.metrics["score"] == 23.0

    studies = optuna_trials(f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}")
    assert [t.state.name for t in studies] == ["COMPLETE"] * 6

    # Each trial's log is attached to its run, starting with the command it ran.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for run in trials:
        number = run.data.tags["sweeper.trial"]
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"trial-{number}.log"]
        local = client.download_artifacts(run.info.run_id, f"trial-{number}.log", str(tmp_path))
        assert Path(local).read_text().startswith("# command:")
