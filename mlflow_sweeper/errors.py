"""Exceptions users can cause, each mapped to one exit code of the command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class SweeperError(Exception):
    """An error with a message meant for the user, never shown with a traceback."""

    exit_code = EXIT_FAILED


class ConfigError(SweeperError):
    """An invalid config file: exit 2, and nothing has been written to any storage."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str, key: str | None, message: str):
        self.path = path
        self.key = key
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + message)


class ConfigProblem(ValueError):
    """A config value that cannot be used, raised where the file is not known (a value check, the
    search space, an algorithm, a pruner). The one place that reads a file turns it into the
    ConfigError that names the file (`in_config_file`), so every config problem reads alike."""

    def __init__(self, key: str | None, message: str):
        self.key = key
        self.message = message
        super().__init__(message)

    def under(self, prefix: str) -> ConfigProblem:
        """The same problem, its key under `prefix` (a space's `x.step` under `parameters`)."""
        return ConfigProblem(f"{prefix}.{self.key}" if self.key else prefix, self.message)

    def at(self, path: object) -> ConfigError:
        return ConfigError(str(path), self.key, self.message)


@contextmanager
def in_config_file(path: object) -> Iterator[None]:
    """Every ConfigProblem raised inside becomes the ConfigError naming the file `path`."""
    try:
        yield
    except ConfigProblem as problem:
        raise problem.at(path) from None


class StorageError(SweeperError):
    """A storage that cannot be reached or used, named in the message."""

    exit_code = EXIT_USAGE


class DriftError(SweeperError):
    """The config no longer matches the sweep stored under the same identity."""

    exit_code = EXIT_USAGE


class Interrupted(SweeperError):
    """Ctrl-C or SIGTERM: running trials were cancelled."""

    exit_code = EXIT_INTERRUPTED


class ProjectError(SweeperError):
    """A project, entry point, parameter or environment that cannot work, found before anything
    is written: exit 2, and nothing has been written to any storage."""

    exit_code = EXIT_USAGE


class NoSuchSweep(SweeperError):
    """A command that needs an existing sweep was given a config whose sweep does not exist."""

    exit_code = EXIT_USAGE


class UsageError(SweeperError):
    """A command-line value that cannot be used (a report directory that cannot be created)."""

    exit_code = EXIT_USAGE
