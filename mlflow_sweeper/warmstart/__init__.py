"""Warm start: earlier results (other sweeps, MLflow runs) entered into a new sweep's study once,
before its first new trial, as completed trials that use none of its budget."""

from ..config.warm_start import RunsSource, SweepSource, WarmSource, parse_warm_start

__all__ = ["RunsSource", "SweepSource", "WarmSource", "parse_warm_start"]
