"""Checks an agent makes before it writes anything, and the few rules a trial needs from the
project, named once here.

- `source`: where the project's files are (a local directory, or a git URI fetched once per
  agent) and its MLproject;
- `entry_point`: the entry point and its parameters: declared names, float and `path` values,
  what a trial is given and what its run records;
- `environment`: the backend, the env manager's tool, and `python` in a trial;
- `checks`: every check of one config tied together (`preflight`, `preflight_all`, `release`).
"""

from .checks import (
    CheckedProject,
    check_command,
    check_project,
    command_program_problem,
    preflight,
    preflight_all,
    release,
)
from .entry_point import (
    check_absent_have_defaults,
    check_declared,
    check_path_values,
    check_required_given,
    check_typed_values,
    declared_parameters,
    full_parameters,
    get_entry_point,
    path_parameters,
    resolve_path_parameters,
)
from .environment import (
    check_backend,
    check_backend_known,
    check_env_manager,
    installed_backends,
    trial_env_path,
)
from .source import ProjectSource, is_remote_uri, load_project, local_project_dir

__all__ = [
    "CheckedProject",
    "ProjectSource",
    "check_absent_have_defaults",
    "check_backend",
    "check_backend_known",
    "check_command",
    "check_declared",
    "check_env_manager",
    "check_typed_values",
    "check_path_values",
    "check_project",
    "check_required_given",
    "command_program_problem",
    "declared_parameters",
    "full_parameters",
    "get_entry_point",
    "installed_backends",
    "is_remote_uri",
    "load_project",
    "local_project_dir",
    "path_parameters",
    "preflight",
    "preflight_all",
    "release",
    "resolve_path_parameters",
    "trial_env_path",
]
