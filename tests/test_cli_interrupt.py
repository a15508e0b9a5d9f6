"""Ctrl-C or SIGTERM before a command has set its own handling (while MLflow is imported, say)
is an interruption: exit 130 with one line, not click's "Aborted!" and exit 1."""

from __future__ import annotations

import signal

from click.testing import CliRunner

from mlflow_sweeper import cli


def test_an_interrupt_while_the_command_starts_exits_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while MLflow is being imported

    monkeypatch.setattr(cli, "_setup_logging", interrupted)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(cli.main, ["status", str(tmp_path / "sweep.yaml")])
        assert signal.getsignal(signal.SIGTERM) is cli._interrupt  # SIGTERM reads as Ctrl-C
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 130, result.output
    assert "mlflow-sweeper: interrupted" in result.output and "Aborted" not in result.output
