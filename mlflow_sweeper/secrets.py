"""Secrets never leave the agent: the one redaction of every config value shown or recorded.

A password in a URL (`scheme://user:PASSWORD@host`, `redis://:PASSWORD@host`, `?password=...`)
and every value the config took from the agent's environment (`${VAR}`) show as `***` in MLflow
params and artifacts, Optuna attrs, console lines, error messages, trial logs and the report.
The agent itself keeps the real values: its storages and trials need them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

MASK = "***"
# A value shorter than this is not hunted for in free text: redacting every "1" or "on" would
# garble every line, and such a value is no secret worth the name.
MIN_REMEMBERED = 4

# The password runs to the `@` before the host, `/` included, as SQLAlchemy reads it (base64 makes
# such passwords); a port followed by a path with an `@` in it is no password, nor an IPv6 host
# (`[::1]:5000`) or a drive (`file://C:/`).
# A scheme starts where no scheme character precedes it: tried from every letter of a long word
# (a hex dump, a token), the search would take the square of the line's length.
_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.\-])"
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s\[\]]*:)(?!\d{1,5}/|/)(?P<secret>[^@\s]+)@"
)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey)=)"
    r"(?P<secret>[^&;#\s\"'<>]+)",  # a quote closing the URL is not part of it
    re.IGNORECASE,
)

# Credentials the agent holds in its environment: hunted for in what it shows or records.
SECRET_ENVIRONMENT = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "SWEEPER_PROXY_TOKEN")

_lock = threading.Lock()
_remembered: set[str] = set()


def remember(value: str, in_url: bool = False) -> None:
    """A value to redact wherever it appears from now on (one from `${VAR}`, a URL password), as
    written and as the places that show it escape it (see `written_forms`)."""
    if isinstance(value, str) and len(value) >= MIN_REMEMBERED and value != MASK:
        forms = written_forms(value, in_url)
        with _lock:
            _remembered.update(form for form in forms if len(form) >= MIN_REMEMBERED)


def written_forms(value: str, in_url: bool = False) -> set[str]:
    """A value as text may show it: itself, quoted for a shell (a trial log's command line), escaped
    in JSON or a Python repr (a traceback, a params dump), percent-encoded in a URL; `in_url`: a
    password as a URL holds it, also decoded (as the driver read it; another value's `%41` is
    no escape, and its decoded text could be any ordinary word)."""
    forms = {value, shlex.quote(value), json.dumps(value)[1:-1], repr(value)[1:-1]}
    forms.add(urllib.parse.quote(value, safe=""))
    if in_url:
        forms.add(urllib.parse.unquote(value))
    return {form for form in forms if form}


def remembered() -> list[str]:
    """Every value remembered so far, in each written form: what a trial log relay masks."""
    with _lock:
        return sorted(_remembered)


def adopt(values: list[str]) -> None:
    """Remember `values` as they are, forms included (another process's `remembered()`)."""
    with _lock:
        _remembered.update(
            value for value in values if isinstance(value, str) and len(value) >= MIN_REMEMBERED
        )


def remember_environment() -> None:
    """The credentials of the agent's environment, remembered (its trials inherit them and may print them)."""
    for name in SECRET_ENVIRONMENT:
        remember(os.environ.get(name, ""))


def forget_all() -> None:
    """Forget every remembered value (for tests that load several configs in one process)."""
    with _lock:
        _remembered.clear()


def _masked_match(match: re.Match[str]) -> str:
    remember(match.group("secret"), in_url=True)
    return match.group("head") + MASK + match.group(0)[match.end("secret") - match.start() :]


def without_credentials(url: str) -> str:
    """A URL's password and secret query values as `***`, nothing else: the same answer in every
    process, whatever values it remembers (unlike `redact`)."""
    url = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group(0)[m.end("secret") - m.start() :], url)
    return _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, url)


def redact(text: Any) -> Any:
    """`text` fit to be shown or recorded: URL passwords, secret query values and remembered
    values replaced by `***`. Anything that is not a string is returned unchanged."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL_PASSWORD.sub(_masked_match, text)
    text = _QUERY_SECRET.sub(_masked_match, text)
    with _lock:
        values = sorted(_remembered, key=len, reverse=True)  # longest first: no partial leftovers
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_bytes(data: bytes) -> bytes:
    """`redact` for raw output (a trial's log): bytes that are not UTF-8 pass through unchanged."""
    return redact(data.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape")


def redact_value(value: Any) -> Any:
    """`redact` through mappings, lists and tuples (a config, a params dict), keys kept."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_value(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(inner) for inner in value)
    return value


class RedactingFilter(logging.Filter):
    """On a console handler: every record's text redacted before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, ()
        return True


class RedactingStream:
    """stdout or stderr with every write redacted: whatever a command prints (a status line, JSON,
    a link with credentials) passes here, so no printing code has to remember to redact."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(redact(text))
        except BrokenPipeError:
            self._reader_gone()
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        """The reader closed the pipe (`status | head -1`): the rest of the output goes nowhere,
        and the command goes on to its end and its exit code (a `delete` of several sweeps is not
        cut short after the first line)."""
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # Python's own flush at exit finds it too
            os.close(devnull)
        self._stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, buffer...
        return getattr(self._stream, name)

    @classmethod
    def wrap(cls, stream: Any, fd: int) -> Any:
        """`stream` redacted; one the command was started without (`status >&-`) writes to
        /dev/null, which also takes its descriptor, so no file the agent opens (a SQLite store)
        becomes its stdout, nor that of the trials."""
        if stream is None:
            stream = _devnull_at(fd)
        return stream if isinstance(stream, cls) else cls(stream)


def _devnull_at(fd: int) -> Any:
    """/dev/null opened at descriptor `fd` (left closed by whoever started the process)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)
    return open(fd, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
