"""Redaction and `${VAR}` expansion, in process: what a sweep shows of its config."""

from __future__ import annotations

import json
import logging
import shlex

import pytest
import yaml

from mlflow_sweeper.config import load_config
from mlflow_sweeper.errors import ConfigError, ConfigProblem
from mlflow_sweeper.expansion import expand_config
from mlflow_sweeper.secrets import MASK, RedactingFilter, forget_all, redact, redact_value, remember
from mlflow_sweeper.storages import mask


@pytest.fixture(autouse=True)
def _fresh_memory():
    forget_all()
    yield
    forget_all()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://postgres:S3cretPW@127.0.0.1:5432/db",
            "postgresql+psycopg://postgres:***@127.0.0.1:5432/db",
        ),
        ("redis://:R3disPW@host:6379/0", "redis://:***@host:6379/0"),
        ("mysql+pymysql://u:p%40ss@h/db?charset=utf8", "mysql+pymysql://u:***@h/db?charset=utf8"),
        ("postgresql://h/db?user=u&password=Qu3ryPW", "postgresql://h/db?user=u&password=***"),
        ("http://127.0.0.1:5000/path@x", "http://127.0.0.1:5000/path@x"),
        ("http://[::1]:5000/path@x", "http://[::1]:5000/path@x"),
        ("file://C:/Users/me@corp/x", "file://C:/Users/me@corp/x"),
        # base64 makes passwords with `/`; SQLAlchemy reads the password up to the `@`
        ("postgresql://u:pa/ss+Lk=@127.0.0.1:5432/db", "postgresql://u:***@127.0.0.1:5432/db"),
        # a quote closing the URL stays: the logged config must still load
        ('url: "postgresql://h/db?password=Qu3ryPW"', 'url: "postgresql://h/db?password=***"'),
        ("sqlite:///tmp/optuna.db", "sqlite:///tmp/optuna.db"),
        ("grpc://127.0.0.1:4000", "grpc://127.0.0.1:4000"),
    ],
)
def test_url_passwords_are_redacted(url, shown):
    assert redact(url) == shown
    assert mask(url) == shown  # the storages' mask is the same redaction


def test_a_long_word_is_read_once_not_from_each_of_its_letters():
    """A trial printing a 2 MB hex dump on one line: every line passes `redact` (the log relay, the
    scrub at the end), and a URL's scheme looked for from each letter on would take hours. It ends,
    and a URL glued after it is still found."""
    word = "A" * 2_000_000
    assert redact(word) == word
    assert redact(word + " postgresql://u:Lng3stPW@h/db") == word + f" postgresql://u:{MASK}@h/db"


def test_a_url_password_is_redacted_wherever_it_shows_next():
    redact("postgresql://u:S3cretPW@h/db")
    assert redact("FATAL: password S3cretPW rejected") == f"FATAL: password {MASK} rejected"


def test_a_remembered_value_is_redacted_as_each_place_escapes_it():
    """A trial log's command line quotes it for a shell, JSON and a traceback escape it, a URL
    percent-encodes it: none of them shows it."""
    import json
    import urllib.parse

    secret = 'it\'s "a" p@ss/w\\d'
    remember(secret)
    shown = [
        shlex.join(["python", "t.py", "--pw", secret]),
        json.dumps({"pw": secret}),
        repr({"pw": secret}),
        f"postgresql://u:{urllib.parse.quote(secret, safe='')}@h/db",
        f"password {urllib.parse.quote(secret, safe='')} rejected",
    ]
    for text in shown:
        assert "p@ss" not in redact(text) and "p%40ss" not in redact(text) and MASK in redact(text), text
    # a URL's password is also hunted for decoded; another value's `%41` is no escape
    redact("postgresql://u:S3cr%40tPW@h/db")
    remember("abcd%41")
    assert (
        redact("driver said: S3cr@tPW rejected; abcdA is a word")
        == f"driver said: {MASK} rejected; abcdA is a word"
    )


def test_remembered_values_are_redacted_in_nested_values_and_short_ones_are_not():
    remember("tok-123456")
    remember("on")  # too short to hunt for in text
    assert redact_value({"a": ["x tok-123456 y", 3], "b": ("tok-123456",), "c": "on"}) == {
        "a": [f"x {MASK} y", 3],
        "b": (MASK,),
        "c": "on",
    }


def test_the_console_filter_redacts_formatted_records():
    remember("tok-123456")
    record = logging.LogRecord("mlflow_sweeper", logging.INFO, __file__, 1, "token %s", ("tok-123456",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == f"token {MASK}"


def test_expansion_takes_the_environment_defaults_and_literals():
    env = {"PGPASS": "S3cretPW", "EMPTY": ""}
    data = {
        "optuna_storage": "postgresql://u:${PGPASS}@h/db",
        "parameters": {"mode": ["${MODE:-fast}", "${EMPTY:-dflt}", "$${LITERAL}"]},
        "seed": 3,
    }
    assert expand_config(data, env) == {
        "optuna_storage": "postgresql://u:S3cretPW@h/db",
        "parameters": {"mode": ["fast", "dflt", "${LITERAL}"]},
        "seed": 3,
    }
    assert redact("S3cretPW") == MASK  # a value from the environment is remembered


def test_a_command_is_split_before_its_references_are_expanded():
    """A value with spaces or quotes (a password, say) stays the one argument it was written as."""
    env = {"TOKEN": "it's a b"}
    command = expand_config({"command": "python t.py --token ${TOKEN} '--x={x}'"}, env)["command"]
    assert shlex.split(command) == ["python", "t.py", "--token", "it's a b", "--x={x}"]
    shown = expand_config({"command": "python t.py --token ${TOKEN}"}, env, shown=True)["command"]
    assert shlex.split(shown) == ["python", "t.py", "--token", MASK]
    # as in a shell: an empty reference is no argument, a written "" is one; a default keeps its spaces
    command = expand_config({"command": 'p ${EXTRA:-} "" --x ${V:-a b} $${LIT}'}, {"EXTRA": ""})["command"]
    assert shlex.split(command) == ["p", "", "--x", "a b", "${LIT}"]
    # a quoted reference that comes out empty is an empty argument: `--tag` keeps its value
    written = """p --tag "${TAG:-}" --note '${NOTE}' --x "a ${TAG:-}" ${TAG:-}${NOTE} y"""
    command = expand_config({"command": written}, {"NOTE": ""})["command"]
    assert shlex.split(command) == ["p", "--tag", "", "--note", "", "--x", "a ", "y"]


def test_a_value_in_a_command_reaches_the_trial_verbatim_braces_and_all():
    """A secret holding `{x}` is no placeholder: its braces pass through `build_argv` as they are."""
    from mlflow_sweeper.command_line import build_argv

    command = expand_config({"command": "p --pw=${PW} --v={x}"}, {"PW": "ab{x}cd${HOME}{"})["command"]
    assert build_argv(command, {"x": 1}, "name=value", ()) == ["p", "--pw=ab{x}cd${HOME}{", "--v=1"]


def test_an_unset_variable_names_itself_and_its_key():
    with pytest.raises(ConfigProblem) as caught:
        expand_config({"command": {"args": ["python x.py ${NOT_SET_ANYWHERE}"]}}, {})
    assert caught.value.key == "command.args[0]"
    assert "NOT_SET_ANYWHERE" in str(caught.value)


def test_load_config_expands_and_an_unset_variable_is_exit_2(tmp_path, monkeypatch):
    path = tmp_path / "sweep.yaml"
    config = {
        "experiment": "exp",
        "sweep_name": "s1",
        "command": "python train.py --token ${SWEEPER_TEST_TOKEN}",
        "parameters": {"x": [1, 2]},
        "mlflow_storage": "sqlite:///mlflow.db",
    }
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SWEEPER_TEST_TOKEN", "tok-abcdef")
    loaded = load_config(path)
    assert loaded.command == "python train.py --token tok-abcdef"
    assert all("tok-abcdef" not in redact(value) for value in loaded.as_params().values())
    monkeypatch.delenv("SWEEPER_TEST_TOKEN")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == 2
    assert caught.value.key == "command" and "SWEEPER_TEST_TOKEN" in str(caught.value)
    assert str(path.resolve()) in str(caught.value)


def test_commands_that_launch_no_trial_need_no_variable_only_the_launch_uses(tmp_path, monkeypatch):
    """`status`, `delete`, `report`, `refine`: an operator checking progress need not hold the
    trials' secrets; the storages' variables are needed all the same."""
    from mlflow_sweeper.config import load_configs

    monkeypatch.delenv("SWEEP_TRIAL_ONLY", raising=False)
    monkeypatch.delenv("SWEEP_STORAGE_PW", raising=False)
    command = "python train.py --token ${SWEEP_TRIAL_ONLY} --data ${SWEEP_TRIAL_ONLY:-/data} {x}"
    path = _write(tmp_path, command=command, parameters={"x": [1]})
    assert load_configs([str(path)])[0].command == "python train.py --token *** --data /data '{x}'"
    with pytest.raises(ConfigError, match="SWEEP_TRIAL_ONLY is not set"):
        load_configs([str(path)], to_run=True)
    storage = _write(
        tmp_path, parameters={"x": [1]}, optuna_storage="postgresql://u:${SWEEP_STORAGE_PW}@h/db"
    )
    with pytest.raises(ConfigError, match="SWEEP_STORAGE_PW is not set"):
        load_configs([str(storage)])


def _write(tmp_path, **keys):
    path = tmp_path / "sweep.yaml"
    data = {"experiment": "exp", "sweep_name": "s1", "command": "python train.py", **keys}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("keys", "key"),
    [
        ({"experiment": "team-${SWEEP_NAME_PART}"}, "experiment"),
        ({"sweep_name": "${SWEEP_NAME_PART}"}, "sweep_name"),
        ({"spec": {"metric": "val/${SWEEP_NAME_PART}"}}, "spec.metric"),
        ({"spec": {"metrics": [{"name": "a"}, {"name": "${SWEEP_NAME_PART}"}]}}, "spec.metrics[1].name"),
        (
            {"spec": {"metric": "m"}, "register": {"model_name": "m-${SWEEP_NAME_PART}"}},
            "register.model_name",
        ),
        (
            {"spec": {"metric": "m", "constraints": ["a <= 1", "${SWEEP_NAME_PART} <= 5"]}},
            "spec.constraints[1]",
        ),
    ],
)
def test_a_name_the_sweep_is_known_by_may_not_take_a_value_from_the_environment(
    tmp_path, monkeypatch, keys, key
):
    """It shows in MLflow as it is (the experiment, run names, `sweeper.sweep` tags, metric keys),
    where a value from `${VAR}` never appears: exit 2, naming the key."""
    monkeypatch.setenv("SWEEP_NAME_PART", "TeamValueQQ")
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, parameters={"x": [1]}, **keys))
    assert caught.value.exit_code == 2 and caught.value.key == key, str(caught.value)
    assert "TeamValueQQ" not in str(caught.value) and "write the name out" in str(caught.value)
    monkeypatch.delenv("SWEEP_NAME_PART")  # a default whose variable is unset is written out
    loaded = load_config(_write(tmp_path, parameters={"x": [1]}, sweep_name="s-${SWEEP_NAME_PART:-one}"))
    assert loaded.sweep_name == "s-one"


def test_parameter_values_from_the_environment_are_searched_as_shown_and_revealed_to_trials(
    tmp_path, monkeypatch
):
    """The space (Optuna's choices, MLflow params, warm-start matching) holds `***`, however short
    the value; only what a trial's launcher gets has the real one."""
    monkeypatch.setenv("SWEEP_LIST_SECRET", "ListS3cret")
    monkeypatch.setenv("SWEEP_SHORT", "7")
    path = _write(
        tmp_path,
        parameters={"choice": ["${SWEEP_LIST_SECRET}", "plain"], "seed": "${SWEEP_SHORT}", "x": [1, 2]},
    )
    config = load_config(path)
    assert config.space.axes["choice"].values == (MASK, "plain")
    assert config.space.fixed["seed"] == MASK
    assert config.revealed({"choice": MASK, "seed": MASK, "x": 1}) == {
        "choice": "ListS3cret",
        "seed": "7",
        "x": 1,
    }
    assert config.revealed({"choice": "plain", "x": 2}) == {"choice": "plain", "x": 2}
    params = config.as_params()
    assert params["parameters.seed"] == MASK and "ListS3cret" not in str(params)
    assert "ListS3cret" not in json.dumps(config.fingerprint())


def test_two_values_that_would_show_alike_are_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEP_A", "first-secret")
    monkeypatch.setenv("SWEEP_B", "second-secret")
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, parameters={"key": ["${SWEEP_A}", "${SWEEP_B}"]}))
    assert caught.value.exit_code == 2 and caught.value.key == "parameters.key"
    assert "both show as '***'" in str(caught.value)
    config = load_config(_write(tmp_path, parameters={"key": ["a-${SWEEP_A}", "b-${SWEEP_B}"]}))
    assert config.space.axes["key"].values == ("a-***", "b-***")


def test_a_value_from_the_environment_cannot_go_to_a_backend_that_records_its_parameters(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SWEEP_A", "first-secret")
    (tmp_path / "k8s.json").write_text("{}")
    path = _write(
        tmp_path, parameters={"key": "${SWEEP_A}", "x": [1]}, backend="kubernetes", backend_config="k8s.json"
    )
    data = yaml.safe_load(path.read_text())
    data.pop("command")
    data["entry_point"] = "main"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == 2 and "backend 'kubernetes'" in str(caught.value)


def test_a_project_holding_a_secret_cannot_go_to_a_backend_that_records_it(tmp_path, monkeypatch):
    """MLflow Projects tags the run it makes with the project URI: a token in it would be there."""
    monkeypatch.setenv("SWEEP_GIT_TOKEN", "gh-s3cret-token")
    (tmp_path / "k8s.json").write_text("{}")
    for project in ("https://oauth2:${SWEEP_GIT_TOKEN}@example.com/repo.git", "https://me:pw1234@example.com/r.git"):
        path = _write(tmp_path, parameters={"x": [1]}, backend="kubernetes", backend_config="k8s.json")
        data = yaml.safe_load(path.read_text())
        data.pop("command")
        data.update(entry_point="main", project=project)
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.key == "project" and "backend 'kubernetes'" in str(caught.value)
    data.pop("backend"), data.pop("backend_config")
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).shown_project == "https://me:***@example.com/r.git"  # its runs' source tag


def test_a_trial_log_header_masks_its_hidden_values_however_short(tmp_path):
    from mlflow_sweeper.trial_log import log_header

    header = log_header(["python", "t.py", "short=7", "x=17", "--s", "7"], tmp_path, hidden=("7",))
    assert "'short=***' x=17 --s '***'" in header
    header = log_header(["bash", "-c", "python t.py --short 7 --x 17"], tmp_path, hidden=("7",))
    assert "'python t.py --short *** --x 17'" in header
