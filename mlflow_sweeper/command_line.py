"""The argv of a `command` trial: the command split like a shell would, never run by one.

A `{name}` placeholder is replaced, inside its argv token, by that parameter's value, so scripts
that take flags (`--lr={lr}`, `--lr {lr}`) or build paths (`out/{seed}.txt`) can be swept. The
parameters no placeholder names are appended in the sweep's `arg_style`. `{{` and `}}` are literal
braces. Values reach the trial verbatim: there is no shell to interpret them.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .hints import did_you_mean, near_name

ARG_STYLES = ("name=value", "--name=value", "--name value")
NOISE_FREE_DIGITS = 12  # a float that is this many digits at 15 but 16 or 17 in full: float noise
DEFAULT_ARG_STYLE = "name=value"


class CommandTemplateError(ValueError):
    """A command that cannot be turned into an argv; the message is meant for the user."""


@dataclass(frozen=True)
class Placeholder:
    name: str


Part = str | Placeholder


def value_text(value: Any) -> str:
    """A parameter value as a trial sees it (and as its run records it), every digit kept, but
    for float noise on a short decimal: a stepped range's 0.1 * 3 is 0.3, not 0.30000000000000004."""
    if isinstance(value, float) and math.isfinite(value):
        short = f"{value:.15g}"
        if len(short.split("e")[0].lstrip("-").replace(".", "").strip("0")) <= NOISE_FREE_DIGITS:
            return str(float(short))
    return str(value)


def _parse_token(token: str) -> list[Part]:
    """Split one argv token into literal text and placeholders."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(token):
        char = token[i]
        if char == "{" and token.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and token.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "{":
            end = token.find("}", i + 1)
            inner = token[i + 1 : end] if end != -1 else ""
            if end == -1 or "{" in inner:
                raise CommandTemplateError(f"unmatched '{{' in {token!r}; write '{{{{' for a literal brace")
            if not inner.strip():
                raise CommandTemplateError(
                    f"empty placeholder '{{}}' in {token!r}; name a parameter, e.g. '{{lr}}', "
                    "or write '{{}}' for literal braces"
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(inner))
            i = end + 1
        elif char == "}":
            raise CommandTemplateError(f"unmatched '}}' in {token!r}; write '}}}}' for a literal brace")
        else:
            literal.append(char)
            i += 1
    if literal or not parts:
        parts.append("".join(literal))
    return parts


def parse_command(command: str) -> list[list[Part]]:
    """The command's argv tokens, each as literal text and placeholders. Raises
    CommandTemplateError for a command that cannot be split or has unmatched braces."""
    try:
        tokens = shlex.split(command)
    except ValueError as exc:
        raise CommandTemplateError(f"cannot split the command: {exc}") from None
    if not tokens:
        raise CommandTemplateError("the command is empty")
    return [_parse_token(token) for token in tokens]


def placeholder_names(command: str) -> list[str]:
    """Every parameter a placeholder of the command names, once each, in order."""
    names: list[str] = []
    for token in parse_command(command):
        for part in token:
            if isinstance(part, Placeholder) and part.name not in names:
                names.append(part.name)
    return names


def command_problem(command: str, parameter_names: Iterable[str]) -> str | None:
    """Why the command cannot run with these parameters, or None: a placeholder that names no
    parameter (with the nearest name as a suggestion), or a malformed command."""
    known = list(parameter_names)
    try:
        used = placeholder_names(command)
    except CommandTemplateError as exc:
        return str(exc)
    for name in used:
        if name not in known:
            near = near_name(name, known)
            hint = (
                f"did you mean '{{{near}}}'?"
                if near
                else (f"the parameters are: {', '.join(known)}" if known else "no parameters are given")
            )
            return (
                f"placeholder '{{{name}}}' names no parameter ({hint}); "
                "write '{{' and '}}' for literal braces"
            )
    return None


def conditional_problem(command: str, conditional: Iterable[str]) -> str | None:
    """Why a placeholder of a conditional parameter cannot be left out cleanly, or None: an
    argument holding it is left out where the parameter is off, so it must not also pass another
    parameter (`--cfg={opt},{mom}` would lose `opt` there)."""
    off = set(conditional)
    for token in parse_command(command):
        names = {part.name for part in token if isinstance(part, Placeholder)}
        if len(names) > 1 and names & off:
            name = sorted(names & off)[0]
            others = ", ".join(f"'{{{n}}}'" for n in sorted(names - {name}))
            return (
                f"placeholder '{{{name}}}' of a conditional parameter shares its argument with {others}: "
                "that argument is left out where the parameter is off; give it an argument of its own"
            )
    return None


def check_arg_style(arg_style: str) -> str | None:
    """Why `arg_style` is not usable, or None."""
    if arg_style in ARG_STYLES:
        return None
    hint = did_you_mean(str(arg_style), ARG_STYLES, cutoff=0.5)
    return f"expected one of {', '.join(repr(s) for s in ARG_STYLES)}, got {arg_style!r}{hint}"


def appended_tokens(name: str, value: Any, arg_style: str = DEFAULT_ARG_STYLE) -> list[str]:
    """One parameter as the argv tokens `arg_style` asks for."""
    text = value_text(value)
    if arg_style == "name=value":
        return [f"{name}={text}"]
    if arg_style == "--name=value":
        return [f"--{name}={text}"]
    if arg_style == "--name value":
        return [f"--{name}", text]
    raise CommandTemplateError(check_arg_style(arg_style) or arg_style)


def build_argv(
    command: str,
    params: Mapping[str, Any],
    arg_style: str = DEFAULT_ARG_STYLE,
    absent: Iterable[str] = (),
) -> list[str]:
    """The trial's argv: placeholders filled in place, the other parameters appended in order.

    `absent`: parameters of the sweep that this point does not have (a `when` that does not
    hold). A token holding one of their placeholders is left out, and so is the option just
    before it when the placeholder stands alone (`--momentum {momentum}`): a parameter that is
    off is not passed. Raises CommandTemplateError for a placeholder naming no parameter (the
    config check reports that before any trial; this is the last line of defence)."""
    tokens = parse_command(command)
    left_out = _left_out(tokens, set(absent))
    argv: list[str] = []
    used: set[str] = set()
    for index, token in enumerate(tokens):
        if index in left_out:
            continue
        pieces: list[str] = []
        for part in token:
            if isinstance(part, Placeholder):
                if part.name not in params:
                    raise CommandTemplateError(command_problem(command, params) or part.name)
                pieces.append(value_text(params[part.name]))
                used.add(part.name)
            else:
                pieces.append(part)
        argv.append("".join(pieces))
    for name, value in params.items():
        if name not in used:
            argv += appended_tokens(name, value, arg_style)
    return argv


def _left_out(tokens: list[list[Part]], absent: set[str]) -> set[int]:
    """The indexes of the tokens that pass a parameter this point does not have: those holding
    its placeholder, and a literal option (`--name`, `-n`) just before one that is only that."""
    out: set[int] = set()
    for index, token in enumerate(tokens):
        if not any(isinstance(part, Placeholder) and part.name in absent for part in token):
            continue
        out.add(index)
        before = tokens[index - 1] if index else None
        if len(token) == 1 and before is not None and len(before) == 1 and isinstance(before[0], str):
            literal = before[0]
            if literal.startswith("-") and len(literal) > 1 and "=" not in literal:
                out.add(index - 1)
    return out
