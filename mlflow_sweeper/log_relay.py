"""A trial's output on its way into its log, every secret masked as it passes.

Run as its own small process (`python -m mlflow_sweeper.log_relay`) between a trial and its log
when the sweep holds secrets: the log then never holds them, not while the trial runs, nor
after its agent died and left the trial running. Its first input line is the JSON list of the
values to mask, written by the agent; the rest is the trial's output, relayed line by line
(a URL with a password is masked whole), to the log on its stdout until the trial's end of file.
Imports nothing heavy: it starts beside every trial of such a sweep.
"""

from __future__ import annotations

import fcntl
import json
import os

from .secrets import adopt, redact_bytes, remembered

CHUNK = 65536
LONGEST_HELD = 65536  # a line longer than this (a progress bar without ends) is written in parts
_LINE_ENDS = (b"\n", b"\r")


def relay(source: int, target: int, held: bytes = b"") -> None:
    """Copy `source` to `target` until its end, each complete line masked before it is written.
    A line too long to hold is masked and written but for its last bytes, which may begin a
    secret that the next read completes."""
    encoded = (len(value.encode("utf-8", errors="surrogateescape")) for value in remembered())
    kept = max(encoded, default=1) - 1
    while True:
        cut = max(held.rfind(end) for end in _LINE_ENDS) + 1
        if cut:
            write_all(target, redact_bytes(held[:cut]))
            held = held[cut:]
        if len(held) >= LONGEST_HELD:
            shown = redact_bytes(held)
            split = max(len(shown) - kept, 0)
            write_all(target, shown[:split])
            held = shown[split:]  # masked again with what follows: `***` stays `***`
        chunk = os.read(source, CHUNK)
        if not chunk:
            break
        held += chunk
    if held:
        write_all(target, redact_bytes(held))


def write_all(target: int, data: bytes) -> None:
    """All of `data` to the descriptor `target` (a pipe or a file may take it in parts)."""
    view = memoryview(data)
    while view:
        view = view[os.write(target, view) :]


def _values(source: int) -> tuple[list[str], bytes]:
    """The values to mask (the first line) and whatever of the trial's output came with it."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(source, CHUNK)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\n")
    return json.loads(head or b"[]"), rest


def main() -> None:
    fcntl.flock(1, fcntl.LOCK_EX)  # while it writes: an agent taking over the trial waits for it
    values, rest = _values(0)
    adopt(values)
    relay(0, 1, rest)


if __name__ == "__main__":
    main()
