"""`${VAR}` and `${VAR:-default}` in config strings, from the environment of the agent.

Expanded once, when the config is loaded; each value taken from the environment is remembered
by `secrets`, so it is shown as `***` wherever the sweep shows or records it. `$${` keeps a
literal `${`. An unset variable without a default is a config error naming it and its key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigProblem
from .secrets import remember

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}")
_UNFINISHED = re.compile(r"(?<!\$)\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})")


def expand_text(text: str, key: str, environ: Mapping[str, str] | None = None) -> str:
    """One config string with its references replaced (shell rules: `:-` also covers empty).
    Raises ConfigProblem at `key` for an unset variable without a default."""
    env = os.environ if environ is None else environ
    if _UNFINISHED.search(text):
        hint = "write ${NAME} ($${ for a literal ${)"
        raise ConfigProblem(key or None, f"a '${{' without a name and '}}': {hint}")

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group("name"), match.group("default")
        value = env.get(name)
        if value:
            remember(value)
            return value
        if default is not None:
            return default[2:]
        if value is None:
            hint = f"set it, or give a default: ${{{name}:-default}}"
            raise ConfigProblem(key or None, f"the environment variable {name} is not set ({hint})")
        return value

    return _REFERENCE.sub(replace, text)


def expand_config(data: Any, environ: Mapping[str, str] | None = None, key: str = "") -> Any:
    """Every string of a loaded YAML tree expanded (keys as written); an unset variable is a
    ConfigProblem at its key."""
    if isinstance(data, str):
        return expand_text(data, key, environ) if "${" in data else data
    if isinstance(data, Mapping):
        return {
            name: expand_config(value, environ, f"{key}.{name}" if key else str(name))
            for name, value in data.items()
        }
    if isinstance(data, list):
        return [expand_config(value, environ, f"{key}[{i}]") for i, value in enumerate(data)]
    return data
