"""`${VAR}` and `${VAR:-default}` in config strings, from the environment of the agent.

Expanded once, when the config is loaded; each value taken from the environment is remembered
by `secrets`, so it is shown as `***` wherever the sweep shows or records it. `$${` keeps a
literal `${`. An unset variable without a default is a config error naming it and its key.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

from .errors import ConfigProblem
from .secrets import MASK, remember

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}")
_UNFINISHED = re.compile(r"(?<!\$)\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})")


def expand_text(
    text: str,
    key: str,
    environ: Mapping[str, str] | None = None,
    shown: bool = False,
    braces: bool = False,
    missing: str | None = None,
) -> str:
    """One config string with its references replaced (shell rules: `:-` also covers empty).
    `shown`: each value taken from the environment as `***` instead (a default is written in the
    config, so it shows). `braces`: a value's braces doubled, so that `command`'s `{name}`
    placeholders leave them as they are. Raises ConfigProblem at `key` for an unset variable
    without a default, unless `missing` stands in for it."""
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
            if shown:
                return MASK
            return value.replace("{", "{{").replace("}", "}}") if braces else value
        if default is not None:
            return default[2:]
        if value is None and missing is not None:
            return missing
        if value is None:
            hint = f"set it, or give a default: ${{{name}:-default}}"
            raise ConfigProblem(key or None, f"the environment variable {name} is not set ({hint})")
        return value

    return _REFERENCE.sub(replace, text)


def expand_command(
    text: str,
    key: str,
    environ: Mapping[str, str] | None = None,
    shown: bool = False,
    missing: str | None = None,
) -> str:
    """`command`: split as a shell would first, then each argument expanded, so a value with spaces
    or quotes stays the one argument it was written as (`--token ${TOKEN}`, `${V:-a b}`); an
    argument that is only unquoted references and comes out empty is none (`${EXTRA_ARGS:-}`),
    while a quoted one is an empty argument (`--tag "${TAG:-}"`), as in a shell. A command that
    cannot be split is expanded whole: the check of `command` says why."""
    references: list[str] = []
    quoted = _quoted_positions(text)

    def set_aside(match: re.Match[str]) -> str:  # a default may hold spaces: one word while split
        if match.group(0) == "$${":
            return match.group(0)
        references.append(match.group(0))
        mark = _QUOTED_MARK if match.start() in quoted else _MARK
        return f"{mark}{len(references) - 1}{mark}"

    try:
        tokens = shlex.split(_REFERENCE.sub(set_aside, text))
    except ValueError:
        return expand_text(text, key, environ, shown, missing=missing)
    arguments = []
    for token in tokens:
        written = _SET_ASIDE.sub(lambda m: references[int(m.group(2))], token)
        value = expand_text(written, key, environ, shown, braces=True, missing=missing)
        bare = _QUOTED_MARK not in token and _MARK in token and not _SET_ASIDE.sub("", token)
        if value or not bare:  # `bare`: only unquoted references
            arguments.append(_quoted(value))
    return " ".join(arguments)


_MARK, _QUOTED_MARK = "\x00", "\x01"
_SET_ASIDE = re.compile("([\x00\x01])(\\d+)\\1")


def _quoted_positions(text: str) -> set[int]:
    """The positions of `text` inside single or double quotes, as a POSIX shell reads them (a
    backslash escapes the next character outside single quotes)."""
    inside: set[int] = set()
    quote: str | None = None
    escaped = False
    for position, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
        elif quote is not None:
            inside.add(position)
    return inside


def _quoted(token: str) -> str:
    """A token as `shlex.split` reads back; a masked value stays `***`, not `'***'` (no shell
    ever reads the command: its stars glob nothing)."""
    plain = token.replace(MASK, "x")
    return token if shlex.quote(plain) == plain else shlex.quote(token)


def expand_config(
    data: Any,
    environ: Mapping[str, str] | None = None,
    key: str = "",
    shown: bool = False,
    missing: str | None = None,
) -> Any:
    """Every string of a loaded YAML tree expanded (keys as written); an unset variable without a
    default is a ConfigProblem at its key, unless `missing` stands in for it. `shown`: the tree as
    the sweep shows and records it (values from the environment as `***`, whatever their length)."""
    if isinstance(data, str):
        if "${" not in data:
            return data
        expand = expand_command if key == "command" else expand_text
        return expand(data, key, environ, shown, missing=missing)
    if isinstance(data, Mapping):
        return {
            name: expand_config(value, environ, f"{key}.{name}" if key else str(name), shown, missing)
            for name, value in data.items()
        }
    if isinstance(data, list):
        return [expand_config(value, environ, f"{key}[{i}]", shown, missing) for i, value in enumerate(data)]
    return data


def hidden_values(real: Any, shown: Any, key: str = "parameters") -> dict[str, dict[Any, Any]]:
    """For each parameter, its values that show differently from what the trial gets ({shown:
    real}): the search space holds the shown ones (so Optuna, MLflow, the report and warm start
    never see a secret) and a trial's launcher gets the real ones. Two values of one parameter
    that would show alike are a ConfigProblem: the sweep could not tell them apart."""
    hidden: dict[str, dict[Any, Any]] = {}
    if not isinstance(real, Mapping) or not isinstance(shown, Mapping):
        return hidden
    for name, spec in real.items():
        pairs = _value_pairs(spec, shown.get(name))
        mapping: dict[Any, Any] = {}
        for real_value, shown_value in pairs:
            if real_value == shown_value:
                continue
            if mapping.get(shown_value, real_value) != real_value or shown_value in [r for r, _ in pairs]:
                raise ConfigProblem(
                    f"{key}.{name}",
                    f"two values would both show as {shown_value!r} (a value from ${{VAR}} is hidden "
                    "wherever the sweep shows it); give each a visible part, e.g. 'a-${A}' and 'b-${B}'",
                )
            mapping[shown_value] = real_value
        if mapping:
            hidden[str(name)] = mapping
    return hidden


def _value_pairs(real: Any, shown: Any) -> list[tuple[Any, Any]]:
    """(real, shown) for each value a parameter entry can take: a list's items, a fixed scalar."""
    if isinstance(real, Mapping) and isinstance(shown, Mapping):
        if "values" in real:
            return _value_pairs(real["values"], shown.get("values"))
        if "value" in real:
            return _value_pairs(real["value"], shown.get("value"))
        return []
    if isinstance(real, list) and isinstance(shown, list) and len(real) == len(shown):
        return [(r, s) for r, s in zip(real, shown, strict=True) if isinstance(r, str)]
    if isinstance(real, str):
        return [(real, shown)]
    return []
