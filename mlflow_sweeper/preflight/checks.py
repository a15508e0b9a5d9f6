"""Every check of one config, tied together: a `command` config's placeholders and program, an
`entry_point` config's project, entry point, parameters, backend and environment. A sweep that
cannot run a single trial fails at once, with exit 2 and one message, instead of after a study
and a parent run exist."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..command_line import check_arg_style, command_problem
from ..errors import ConfigError, ProjectError
from ..hints import did_you_mean
from ..tracking_store import explicit_tracking_uri
from .entry_point import (
    check_absent_have_defaults,
    check_declared,
    check_path_values,
    check_required_given,
    check_typed_values,
    full_parameters,
    get_entry_point,
    resolve_path_parameters,
)
from .environment import check_backend, check_backend_known, check_env_manager, trial_env_path
from .source import ProjectSource, load_project

PYTHONS = ("python", "python3")


@dataclass
class CheckedProject:
    """A project that passed every check, ready for the launcher: no second load per trial."""

    source: ProjectSource
    work_dir: str
    project: Any
    entry_point: Any

    def trial_parameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """What the entry point is given: `path` values made absolute against the project."""
        return resolve_path_parameters(self.entry_point, params, self.work_dir)

    def logged_parameters(self, params: Mapping[str, Any]) -> dict[str, str]:
        """What the trial run records: the entry point's full parameter set."""
        return full_parameters(self.entry_point, params)


# ---- a `command` config ------------------------------------------------------------------------


def command_program_problem(
    argv: list[str], cwd: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why the command's program (or the script `python` is given) cannot be found, or None.
    Tokens holding a placeholder are not checked: their value differs per trial."""
    env = trial_env_path(os.environ if environ is None else environ)
    program = argv[0]
    if "{" in program:
        return None
    if os.sep in program:
        path = os.path.normpath(os.path.join(cwd, os.path.expanduser(program)))
        if not os.path.isfile(path):
            return f"no such executable: {path} (commands run in {cwd})"
        if not os.access(path, os.X_OK):
            return f"{path} is not executable: `chmod +x {path}`, or run it with its interpreter"
    elif shutil.which(program, path=env.get("PATH", "")) is None:
        hint = did_you_mean(program, PYTHONS) if program not in PYTHONS else ""
        return f"program {program!r} is not on PATH{hint}"
    name = os.path.basename(program)
    if name.startswith("python") and len(argv) > 1:
        script = argv[1]
        if script.endswith(".py") and not script.startswith("-") and "{" not in script:
            path = os.path.normpath(os.path.join(cwd, os.path.expanduser(script)))
            if not os.path.isfile(path):
                return f"no such script: {path} (commands run in the config's directory {cwd})"
    return None


def check_command(config: Any, environ: Mapping[str, str] | None = None) -> None:
    """A `command` config's placeholders name parameters, its `arg_style` is known and its
    program exists: a ConfigError (exit 2) naming the file and the key, before any trial."""
    names = [*config.space.axes, *config.space.fixed]
    problem = command_problem(config.command, names)
    if problem:
        raise ConfigError(str(config.path), "command", problem)
    arg_style = getattr(config, "arg_style", None)
    if arg_style is not None and (problem := check_arg_style(arg_style)):
        raise ConfigError(str(config.path), "arg_style", problem)
    problem = command_program_problem(shlex.split(config.command), str(config.base_dir), environ)
    if problem:
        raise ConfigError(str(config.path), "command", problem)


# ---- an `entry_point` config -------------------------------------------------------------------


def _candidates(config: Any) -> dict[str, list[Any]]:
    """Every value a parameter can take that the config lists (fixed ones, grid axes), as the
    trial gets it (a `${VAR}` value is checked as it is, not as it shows); ranges, numbers
    already, are left out."""
    space = config.space
    candidates: dict[str, list[Any]] = {name: [value] for name, value in space.fixed.items()}
    for name, axis in space.axes.items():
        values = axis.grid_values()
        candidates[name] = list(values) if values is not None else []
    return {name: [config.revealed({name: v})[name] for v in values] for name, values in candidates.items()}


def _shown_values(config: Any) -> dict[str, dict[Any, Any]]:
    """Per parameter, {real: shown} for its values from `${VAR}`."""
    return {name: {real: shown for shown, real in values.items()} for name, values in config.hidden.items()}


def check_project(
    config: Any, source: ProjectSource | None = None, optional: Iterable[str] = ()
) -> CheckedProject:
    """Every local check of an `entry_point` config; ProjectError (exit 2) naming the config file.

    `optional`: parameters some trials leave out. Paths and the env manager's tool are checked
    for the local backend only: other backends build their environment and read paths elsewhere.
    """
    source = source or ProjectSource(config.project)
    try:
        work_dir = source.local_dir()
        project = load_project(work_dir)
        entry_point = get_entry_point(project, config.entry_point, work_dir)
        names = [*config.space.axes, *config.space.fixed]
        check_declared(entry_point, names)
        check_typed_values(entry_point, _candidates(config))
        optional = list(optional)
        check_absent_have_defaults(entry_point, optional)
        check_required_given(entry_point, [n for n in names if n not in optional])
        check_backend_known(config.backend, explicit_tracking_uri(config))
        check_backend(project, config.backend, work_dir)
        if config.backend == "local":
            check_path_values(entry_point, _candidates(config), work_dir, _shown_values(config))
            check_env_manager(project, config.env_manager)
    except ProjectError as exc:
        message = _as_shown(str(exc), config)
        if source.remote and source.fetched_dir:  # name the project as the user wrote it
            message = message.replace(source.fetched_dir, source.uri.rstrip("/"))
        source.close()
        raise ProjectError(f"{config.path}: {message}") from None
    return CheckedProject(source, work_dir, project, entry_point)


def _as_shown(message: str, config: Any) -> str:
    """`message` with each parameter value from `${VAR}` as the sweep shows it, however short
    (the checks read the real values)."""
    pairs = [
        (str(real), str(shown)) for values in _shown_values(config).values() for real, shown in values.items()
    ]
    for real, shown in sorted(pairs, key=lambda pair: len(pair[0]), reverse=True):
        pattern = rf"(?<![A-Za-z0-9]){re.escape(real)}(?![A-Za-z0-9])"
        message = re.sub(pattern, lambda _match, shown=shown: shown, message)
    return message


# ---- every config, before any write -----------------------------------------------------------


def check_output_dir(config: Any) -> None:
    """`output_dir` can be made, and written to: trial logs and lock files go there from the first
    trial on, so a folder that cannot be (a file in the way, no permission, a read-only file
    system) stops the agent here, not after the sweep's study and parent run exist. Folders made
    to find out are removed again: a storage refused next must leave no trace."""
    folder = Path(config.output_dir)
    missing = []
    existing = folder
    while not existing.exists() and existing.parent != existing:
        missing.append(existing)
        existing = existing.parent  # the nearest folder that is there: the rest is made in it
    if not existing.is_dir():
        in_the_way = (
            "is a file, not a folder" if existing == folder else f"cannot be made: {existing} is a file"
        )
        raise ConfigError(str(config.path), "output_dir", f"{folder} {in_the_way}")
    try:
        for made in reversed(missing):
            made.mkdir()
    except FileExistsError:
        pass  # another agent made it meanwhile
    except OSError as exc:
        raise ConfigError(
            str(config.path), "output_dir", f"cannot create {folder}: {exc.strerror or exc}"
        ) from None
    finally:
        for made in missing:  # deepest first; one another agent has filled stays
            with contextlib.suppress(OSError):
                made.rmdir()
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder else f" ({existing}, where it would be made)"
        raise ConfigError(str(config.path), "output_dir", f"{folder} is not writable by this user{where}")


def preflight(config: Any, source: ProjectSource | None = None) -> CheckedProject | None:
    """All local checks of one config, before either storage is touched. Returns the checked
    project of an `entry_point` config (None for `command`)."""
    check_output_dir(config)
    if config.command is not None:
        check_command(config)
        return None
    conditional = getattr(config.space, "conditional_names", lambda: [])()
    return check_project(config, source, optional=conditional)


def preflight_all(configs: Iterable[Any]) -> dict[int, CheckedProject | None]:
    """Every config checked before any sweep starts (one bad file stops the agent before it
    writes anything); the checked projects keyed by `id(config)`. On a failure, the projects
    already fetched are released before the error propagates."""
    checked: dict[int, CheckedProject | None] = {}
    try:
        for config in configs:
            checked[id(config)] = preflight(config)
    except BaseException:
        release(checked.values())
        raise
    return checked


def release(checked: Iterable[CheckedProject | None]) -> None:
    """Remove every fetched project copy (once per agent, when it ends)."""
    for project in checked:
        if project is not None:
            project.source.close()
