"""A `command` trial's argv: placeholders inside tokens, arg_style, escapes; the trial log's header
and tail. Argvs are run for real where what matters is what the script receives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_sweeper.command_line import (
    ARG_STYLES,
    CommandTemplateError,
    appended_tokens,
    build_argv,
    check_arg_style,
    command_problem,
    conditional_problem,
    placeholder_names,
)
from mlflow_sweeper.trial_log import indented_tail, log_header, log_tail

FLAGS = Path(__file__).resolve().parent / "project_real" / "flags.py"


def run_argv(argv: list[str], cwd: Path) -> dict:
    """Run an argv without a shell, as a command trial is run; what the script received."""
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_placeholder_is_replaced_inside_its_token():
    argv = build_argv("python train.py --lr={lr} out/{seed}.txt", {"lr": 0.1, "seed": 3})
    assert argv == ["python", "train.py", "--lr=0.1", "out/3.txt"]


def test_two_placeholders_in_one_token_and_a_repeated_one():
    argv = build_argv("run {a}-{b} again={a}", {"a": 1, "b": "x"})
    assert argv == ["run", "1-x", "again=1"]


def test_unplaced_parameters_appended_in_each_arg_style():
    params = {"lr": 0.1, "epochs": 2, "name": "n"}
    command = "python train.py --lr {lr}"
    assert build_argv(command, params) == ["python", "train.py", "--lr", "0.1", "epochs=2", "name=n"]
    assert build_argv(command, params, "--name=value") == [
        "python", "train.py", "--lr", "0.1", "--epochs=2", "--name=n",
    ]  # fmt: skip
    assert build_argv(command, params, "--name value") == [
        "python", "train.py", "--lr", "0.1", "--epochs", "2", "--name", "n",
    ]  # fmt: skip


def test_no_placeholder_keeps_the_default_name_value_tokens():
    assert build_argv("python t.py", {"x": 1, "y": 2}) == ["python", "t.py", "x=1", "y=2"]


def test_escaped_braces_are_literal():
    argv = build_argv("""python -c 'print({{"a": {lr}}})' {{x}}""", {"lr": 1})
    assert argv == ["python", "-c", 'print({"a": 1})', "{x}"]


def test_values_are_verbatim_with_no_shell(tmp_path):
    value = "a b; echo $HOME `id` 'q' {lr}"
    argv = build_argv(f"{sys.executable} {FLAGS} --lr {{lr}} --name={{name}}", {"lr": 0.5, "name": value})
    received = run_argv(argv, tmp_path)
    assert received["args"]["name"] == value
    assert received["args"]["lr"] == 0.5


@pytest.mark.parametrize("style", [s for s in ARG_STYLES if s.startswith("--")])
def test_an_argparse_script_receives_each_flag_style(tmp_path, style):
    argv = build_argv(f"{sys.executable} {FLAGS}", {"lr": 0.25, "epochs": 4, "name": "x y"}, style)
    received = run_argv(argv, tmp_path)
    assert received["args"] == {"lr": 0.25, "epochs": 4, "name": "x y", "out": None}


def test_placeholder_in_a_path_token_reaches_the_script(tmp_path):
    argv = build_argv(f"{sys.executable} {FLAGS} --lr {{lr}} --out out-{{lr}}.txt", {"lr": 0.125})
    run_argv(argv, tmp_path)
    assert (tmp_path / "out-0.125.txt").read_text() == "0.125"


def test_unknown_placeholder_is_a_problem_with_a_suggestion():
    problem = command_problem("python t.py --lr {lrr}", ["lr", "epochs"])
    assert problem is not None
    assert "'{lrr}' names no parameter" in problem
    assert "did you mean '{lr}'?" in problem


def test_unknown_placeholder_without_a_near_name_lists_the_parameters():
    problem = command_problem("python t.py {zzz}", ["lr", "epochs"])
    assert "the parameters are: lr, epochs" in problem


def test_known_placeholders_and_escapes_are_no_problem():
    assert command_problem("python t.py --lr={lr} {{literal}}", ["lr"]) is None
    assert placeholder_names("a {x} {y}-{x} {{z}}") == ["x", "y"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("python t.py {lr", "unmatched '{'"),
        ("python t.py lr}", "unmatched '}'"),
        ("python t.py {}", "or write '{{}}' for literal braces"),
        ("python 't.py", "cannot split the command"),
    ],
)
def test_malformed_commands_are_problems(command, expected):
    problem = command_problem(command, ["lr"])
    assert problem is not None and expected in problem
    with pytest.raises(CommandTemplateError, match=expected):
        build_argv(command, {"lr": 1})


def test_build_argv_refuses_an_unknown_placeholder():
    with pytest.raises(CommandTemplateError, match="names no parameter"):
        build_argv("python t.py {nope}", {"lr": 1})


def test_arg_style_check_suggests_the_near_style():
    assert check_arg_style("--name=value") is None
    problem = check_arg_style("--name_value")
    assert problem is not None and "did you mean" in problem
    with pytest.raises(CommandTemplateError):
        appended_tokens("lr", 1, "name:value")


def test_log_header_states_the_command_line_and_directory(tmp_path):
    header = log_header(["python", "train.py", "--name", "a b"], tmp_path)
    assert header.splitlines() == [
        "# command: python train.py --name 'a b'",
        f"# working directory: {tmp_path}",
    ]


def test_log_tail_returns_at_most_the_last_lines(tmp_path):
    log = tmp_path / "trial.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    tail = log_tail(log)
    assert tail.splitlines() == [f"line {i}" for i in range(4980, 5000)]
    assert log_tail(log, 3) == "line 4997\nline 4998\nline 4999"


def test_log_tail_of_short_empty_missing_and_binary_logs(tmp_path):
    short = tmp_path / "short.log"
    short.write_text("only\ntwo")
    assert log_tail(short) == "only\ntwo"
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert log_tail(empty) == ""
    assert log_tail(tmp_path / "missing.log") == ""
    binary = tmp_path / "binary.log"
    binary.write_bytes(b"ok\n\xff\xfe broken\n")
    assert log_tail(binary).splitlines()[0] == "ok"
    assert indented_tail(short) == "  | only\n  | two"


def test_the_console_tail_shows_what_a_terminal_would(tmp_path):
    """A progress bar's redraws (`\\r`) are one line, as the last redraw; colours are dropped; a
    very long line is cut short (the log keeps it whole); CRLF endings read as lines."""
    log = tmp_path / "trial.log"
    bar = "".join(f"\r{i}%|" + "#" * (i // 10) for i in range(0, 101, 5))
    log.write_text(f"start\r\n{bar}\n\x1b[31mRuntimeError\x1b[0m: boom\n{'y' * 5000}\n")
    assert log_tail(log).split("\n")[:2] == ["start", "100%|##########"]
    shown = indented_tail(log).split("\n")
    assert shown[:3] == ["  | start", "  | 100%|##########", "  | RuntimeError: boom"]
    assert shown[3].startswith("  | yyy") and shown[3].endswith("(4700 more characters in the log)")
    assert len(shown) == 4


def test_log_tail_across_chunk_boundaries(tmp_path):
    log = tmp_path / "long-lines.log"
    lines = [("x" * 3000) + str(i) for i in range(30)]
    log.write_text("\n".join(lines) + "\n")
    assert log_tail(log).splitlines() == lines[-20:]


@pytest.mark.parametrize(
    ("command", "off", "on"),
    [
        ("python t.py --opt={opt} --mom={mom}", ["--opt=a"], ["--opt=b", "--mom=0.9"]),
        ("python t.py --mom {mom} --opt {opt}", ["--opt", "a"], ["--mom", "0.9", "--opt", "b"]),
        ("python t.py out/{mom}.txt {opt}", ["a"], ["out/0.9.txt", "b"]),
    ],
)
def test_a_placeholder_of_a_parameter_that_is_off_leaves_its_token_out(command, off, on):
    """`mom` exists only when `opt` is `b`: at `opt=a` it is neither sampled nor passed."""
    assert build_argv(command, {"opt": "a"}, absent=["mom"]) == ["python", "t.py", *off]
    assert build_argv(command, {"opt": "b", "mom": 0.9}) == ["python", "t.py", *on]


def test_a_conditional_placeholder_sharing_its_argument_with_another_is_a_problem():
    problem = conditional_problem("python t.py --cfg={opt},{mom}", ["mom"])
    assert "'{mom}' of a conditional parameter shares its argument with '{opt}'" in (problem or "")
    assert conditional_problem("python t.py --opt={opt} --mom={mom} {mom}", ["mom"]) is None
