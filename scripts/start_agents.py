#!/usr/bin/env python3
"""Start N local agents on one sweep config, wait for all of them, fail if any failed.

    python scripts/start_agents.py N CONFIG [SWEEP OPTIONS...]
    python scripts/start_agents.py 4 examples/quickstart.yaml -j 2

Each agent is `mlflow-sweeper sweep CONFIG [SWEEP OPTIONS...]` (or `python -m mlflow_sweeper`
when the command is not on PATH); every line it prints is prefixed with `[agent I]`. Agents share
the work through the config's storages, so this is the same as opening N terminals. For agents on
several machines, run the same command (or this script) on each machine.

Ctrl-C or SIGTERM is passed on once to every agent: they cancel their running trials and the
sweep stays resumable; a second Ctrl-C makes them quit at once.

Exit status: 0 when every agent exited 0, else the highest status of an agent (1 a trial failed
for good or could not be launched, 2 a usage or config error, 130 interrupted).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading

USAGE = "usage: start_agents.py N CONFIG [sweep options, e.g. -j 2 --count 10]"


def agent_command() -> list[str]:
    found = shutil.which("mlflow-sweeper")
    return [found] if found else [sys.executable, "-m", "mlflow_sweeper"]


def pump(index: int, stream, lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            sys.stdout.write(f"[agent {index}] {line}")
            sys.stdout.flush()
    stream.close()


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    n = int(argv[0]) if argv[0].isdigit() else 0
    if n < 1:
        print(
            f"start_agents.py: N must be a positive whole number, got {argv[0]!r}\n{USAGE}", file=sys.stderr
        )
        return 2
    config, options = argv[1], argv[2:]
    command = [*agent_command(), "sweep", config, *options]

    lock = threading.Lock()
    agents: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    for index in range(1, n + 1):
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,  # a terminal's Ctrl-C reaches only this script, which passes it on
        )
        agents.append(proc)
        with lock:
            print(f"[start_agents] agent {index}: pid {proc.pid}: {' '.join(command)}", flush=True)
        thread = threading.Thread(target=pump, args=(index, proc.stdout, lock), daemon=True)
        thread.start()
        pumps.append(thread)

    def forward(signum, frame):
        with lock:
            print(f"[start_agents] {signal.Signals(signum).name}: passing it on to the agents", flush=True)
        for proc in agents:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)

    codes = []
    for proc in agents:
        code = proc.wait()
        codes.append(128 - code if code < 0 else code)  # killed by signal S: 128 + S, as a shell says
    for thread in pumps:
        thread.join(timeout=5)
    failed = [(i, c) for i, c in enumerate(codes, 1) if c != 0]
    summary = ", ".join(f"agent {i} exited {c}" for i, c in failed) or "all agents exited 0"
    print(f"[start_agents] {n} agent(s) done: {summary}", flush=True)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
