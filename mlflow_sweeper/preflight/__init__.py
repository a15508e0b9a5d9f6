"""The checks an agent makes before it writes anything (moved into a package; split next)."""

from .entry_point import (
    CheckedProject,
    ProjectSource,
    check_absent_have_defaults,
    check_env_manager,
    check_project,
    full_parameters,
    get_entry_point,
    is_remote_uri,
    load_project,
    preflight,
    preflight_all,
    release,
    resolve_path_parameters,
    trial_env_path,
)

__all__ = [
    "CheckedProject",
    "ProjectSource",
    "check_absent_have_defaults",
    "check_env_manager",
    "check_project",
    "full_parameters",
    "get_entry_point",
    "is_remote_uri",
    "load_project",
    "preflight",
    "preflight_all",
    "release",
    "resolve_path_parameters",
    "trial_env_path",
]
