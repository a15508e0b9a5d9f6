"""Which launcher starts a sweep's trials: a table keyed by mode and backend, like MLflow's
backend registry. A new launch backend is one `Launcher` subclass and one line here."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import SweepConfig
from .backend import BackendLauncher
from .base import Launcher
from .command import CommandLauncher
from .local_project import LocalProjectLauncher

if TYPE_CHECKING:
    from ..preflight import CheckedProject

COMMAND = "command"

# (mode, backend) -> launcher; backend None means "any backend not listed".
LAUNCHERS: dict[tuple[str, str | None], type[Launcher]] = {
    (COMMAND, None): CommandLauncher,
    ("entry_point", "local"): LocalProjectLauncher,
    ("entry_point", None): BackendLauncher,
}


def launcher_class(config: SweepConfig) -> type[Launcher]:
    mode = COMMAND if config.command is not None else "entry_point"
    return LAUNCHERS.get((mode, config.backend)) or LAUNCHERS[(mode, None)]


def make_launcher(
    config: SweepConfig,
    tracking_uri: str,
    log_dir: Path,
    checked: CheckedProject | None = None,
    store_turn: Callable[[], AbstractContextManager] | None = None,
) -> Launcher:
    return launcher_class(config)(config, tracking_uri, log_dir, checked, store_turn)
