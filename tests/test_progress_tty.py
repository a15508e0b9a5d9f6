"""What a person sees: real sweeps under a pseudo-terminal (the screen rebuilt by a terminal
emulator, pyte), and piped.

On a terminal: one live bar per sweep, event lines above it and never on its line, timestamps on
every event, a final newline, the bar not drawn twice around "interrupted". Piped: plain
timestamped lines, no control sequences. `--quiet`: only the summary.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pyte
import pytest
from conftest import cli_env, run_cli, write_config

COLUMNS, ROWS = 200, 300
BAR = re.compile(r"\d+/\d+ done, \d+ running, \d+ failed, \d+ pruned")
EVENT = re.compile(r"trial \d+ (started|finished|cancelled)|complete, parent run|interrupted")
STAMP = re.compile(r"^\d\d:\d\d:\d\d ")
SMALL = {"x": [1, 2], "y": [10]}


def run_in_terminal(args: list[str], cwd: Path, until: bytes | None = None, then=None, timeout: float = 240):
    """Run the CLI with a pseudo-terminal as stdin, stdout and stderr; return (exit code, bytes).

    When `until` first appears in the output, `then(process)` is called (e.g. to press Ctrl-C).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = cli_env({"TERM": "xterm-256color"})
    for name in ("COLUMNS", "LINES", "NO_COLOR", "CI"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow_sweeper", *map(str, args)],
        cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if until is not None and until in output:
                    until = None
                    then(process)
            elif process.poll() is not None:
                break
        code = process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return code, output


def screen_lines(output: bytes) -> tuple[list[str], object]:
    """The lines a person sees once the command has ended, as a terminal draws them."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output)
    return [line.rstrip() for line in screen.display if line.strip()], screen.cursor


def screen_bar_colour(output: bytes) -> str:
    """The colour of the bar's first cell on the screen a person sees at the end."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output)
    for row, line in enumerate(screen.display):
        if BAR.search(line):
            column = line.index("━")
            return screen.buffer[row][column].fg
    return "no bar"


def assert_clean_screen(lines: list[str]) -> None:
    for line in lines:
        assert not (BAR.search(line) and EVENT.search(line)), f"a bar and an event on one line: {line!r}"
        if not BAR.search(line):
            assert STAMP.match(line), f"an event line without a timestamp: {line!r}"


def test_terminal_shows_one_bar_with_events_above_it(tmp_path):
    config = write_config(tmp_path, parameters=SMALL)
    code, output = run_in_terminal(["sweep", config], tmp_path)
    lines, cursor = screen_lines(output)
    shown = "\n".join(lines)
    assert code == 0, shown
    assert output.endswith(b"\n"), repr(output[-200:])
    assert cursor.x == 0, "the shell prompt would start after the last line"
    assert_clean_screen(lines)
    bars = [line for line in lines if BAR.search(line)]
    assert len(bars) == 1, shown
    assert "2/2 done, 0 running, 0 failed, 0 pruned" in bars[0] and "best 12" in bars[0], bars[0]
    assert screen_bar_colour(output) == "green", "a full bar is drawn green, not grey like an empty one"
    assert len(re.findall(rb"\d+/\d+ done", output)) > 2, "the bar was never redrawn while trials ran"
    assert "complete, parent run" in lines[-1], shown
    assert [i for i, line in enumerate(lines) if "trial 1 finished" in line][0] < lines.index(bars[0])


@pytest.mark.extended
def test_a_librarys_log_lines_go_above_the_bar_not_onto_it(tmp_path):
    """Optuna logs a warning for each trial in which CMA-ES samples a list parameter on its own:
    every such line is printed above the bar, none is written onto the bar's line."""
    config = write_config(
        tmp_path,
        algorithm="cmaes",
        max_trials=4,
        sampler_options={"n_startup_trials": 1},
        parameters={"x": {"low": 0.0, "high": 1.0}, "y": {"low": 0.0, "high": 1.0}, "opt": ["a", "b"]},
    )
    code, output = run_in_terminal(["sweep", config, "-j", "2"], tmp_path)
    lines, _ = screen_lines(output)
    assert code == 0, "\n".join(lines)
    raw_lines = re.split(rb"[\r\n]", output)
    warned = [line for line in raw_lines if b"sampled independently" in line]
    assert warned, "\n".join(lines)
    garbled = [line for line in warned if BAR.search(line.decode(errors="replace"))]
    assert not garbled, garbled
    assert [line for line in lines if "sampled independently" in line and not BAR.search(line)]


@pytest.mark.extended
def test_the_bar_counts_every_agents_trials(tmp_path):
    """Another agent works on the same sweep: the bar shows the whole sweep's counts (read from
    the storage), so it ends at 6/6 done although this agent ran only some of the trials. Every
    trial waits until both agents run one (the other's two and this one's), however slow the
    machine is to start this agent."""
    release = tmp_path / "both-agents-run"
    config = write_config(
        tmp_path, parameters={"x": [1, 2, 3, 4, 5, 6], "y": [10], "behave": f"block:{release}"}
    )
    other = subprocess.Popen(
        [sys.executable, "-m", "mlflow_sweeper", "sweep", str(config), "-j", "2"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def release_once_three_run() -> None:
        deadline = time.monotonic() + 180
        while _started(tmp_path) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        release.touch()

    releaser = threading.Thread(target=release_once_three_run, daemon=True)
    try:
        deadline = time.monotonic() + 120
        while _started(tmp_path) < 2:
            assert other.poll() is None and time.monotonic() < deadline, "the other agent did not start"
            time.sleep(0.2)
        releaser.start()
        code, output = run_in_terminal(["sweep", config], tmp_path)
        assert other.wait(timeout=120) == 0, other.stdout.read()
    finally:
        release.touch()
        if other.poll() is None:
            other.kill()
    lines, _ = screen_lines(output)
    assert code == 0, "\n".join(lines)
    here = len([line for line in lines if re.search(r"trial \d+ started", line)])
    assert 0 < here < 6, "\n".join(lines)  # this agent ran only a share of the trials
    bars = [line for line in lines if BAR.search(line)]
    assert bars and "6/6 done, 0 running, 0 failed, 0 pruned" in bars[-1], "\n".join(lines)


def _started(directory: Path) -> int:
    """How many trials of a sweep in `directory` have started (their logs exist)."""
    return len(list((directory / "sweeps" / "logs").glob("*/trial-*.log")))


def test_interrupted_sweep_draws_its_bar_once(tmp_path):
    never = tmp_path / "never"
    config = write_config(tmp_path, parameters={**SMALL, "behave": f"block:{never}"})

    def press_ctrl_c(process):
        time.sleep(1.5)  # let the bar redraw while the trials run
        process.send_signal(signal.SIGINT)

    code, output = run_in_terminal(["sweep", config, "-j", "2"], tmp_path, b"trial 1 started", press_ctrl_c)
    lines, cursor = screen_lines(output)
    shown = "\n".join(lines)
    assert code == 130, shown
    assert output.endswith(b"\n") and cursor.x == 0, repr(output[-200:])
    assert_clean_screen(lines)
    assert len([line for line in lines if BAR.search(line)]) == 1, shown
    assert any("interrupted" in line for line in lines), shown


@pytest.mark.extended  # every other end-to-end test reads the piped lines
def test_piped_output_is_plain_timestamped_lines(tmp_path):
    config = write_config(tmp_path, parameters=SMALL)
    result = run_cli("sweep", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "\x1b[" not in text and "\r" not in text
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any("trial 1 finished" in line for line in lines), text
    for line in lines:
        assert STAMP.match(line), f"a line without a timestamp: {line!r}"


def test_the_libraries_warnings_are_timestamped_lines_and_quiet_silences_them(tmp_path):
    """CMA-ES samples a list parameter independently, and Optuna warns at every trial: piped, as a
    line of the agent's; with --quiet, not at all."""
    keys = {
        "algorithm": "cmaes",
        "max_trials": 2,
        "seed": 1,
        "parameters": {"x": [1, 2], "y": {"low": 10.0, "high": 20.0}},
    }
    piped = run_cli("sweep", write_config(tmp_path / "piped", **keys), cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    warned = [line for line in piped.stderr.splitlines() if "sampled independently" in line]
    assert warned and all(STAMP.match(line) and "[W " not in line for line in warned), piped.stderr
    quiet = run_cli("sweep", write_config(tmp_path / "quiet", **keys), "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert [line for line in quiet.stderr.splitlines() if line.strip()] == [
        line for line in quiet.stderr.splitlines() if "complete, parent run" in line
    ], quiet.stderr


@pytest.mark.extended
def test_quiet_prints_only_the_summary(tmp_path):
    config = write_config(tmp_path, parameters=SMALL)
    result = run_cli("sweep", config, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "complete, parent run" in result.stderr
    assert not re.search(r"trial \d+ (started|finished)", result.stderr), result.stderr
    assert "in the budget" not in result.stderr, result.stderr  # the opening line is an event


def test_eta_counts_down_between_trials_and_moves_smoothly_when_one_ends():
    from mlflow_sweeper.progress import SweepProgress

    progress = SweepProgress("exp/s1", total=10, started=0.0)
    assert progress.eta(now=5.0) is None  # no trial has ended yet: no rate to go by
    progress.done = 1
    assert progress.eta(now=10.0) == pytest.approx(90.0)  # 10 s per trial, 9 left
    assert progress.eta(now=25.0) == pytest.approx(75.0)  # counting down while trials run
    progress.done = 2  # now 12.5 s per trial: a fresh estimate of 100 s, blended in
    eta = progress.eta(now=25.0)
    assert 75.0 < eta < 100.0
    assert progress.eta(now=30.0) == pytest.approx(eta - 5.0)


def test_quiet_reporter_prints_summaries_only():
    import io

    from mlflow_sweeper.progress import Reporter, SweepProgress

    stream = io.StringIO()
    reporter = Reporter(stream=stream, live=True, quiet=True)
    reporter.start(SweepProgress("exp/s1", total=2))
    reporter.event("trial 0 started")
    reporter.summary("a summary line while the sweep runs")
    reporter.stop()
    reporter.event("exp/s1: complete")
    text = stream.getvalue()
    assert "trial 0 started" not in text and "done," not in text, text
    assert "a summary line while the sweep runs" in text and "exp/s1: complete" in text
    assert all(STAMP.match(line) for line in text.splitlines()), text


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_the_live_line_fits_the_terminal_and_keeps_the_counts_and_eta(width):
    from mlflow_sweeper.progress import SweepProgress, fit_bar

    progress = SweepProgress("an-experiment/a_rather_long_sweep_name", total=100, started=0.0)
    progress.done, progress.running, progress.best = 37, 4, 0.123456789
    name, bar, text = fit_bar(progress, width)
    assert len(name) + len(text) + (bar + 2 if bar else 1) <= width
    assert "37/100 done" in text and "4 running" in text and "ETA" in text and "best 0.123" in text
    if width >= 200:
        assert bar == 24 and name == progress.name and "0 failed" in text
    if width >= 120:
        assert bar and name == progress.name
