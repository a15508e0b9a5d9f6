"""The `mlflow-sweeper` command: a thin layer over config, agent and admin."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback

import click

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, SweeperError
from .hangup import on_hangup
from .secrets import RedactingFilter, RedactingStream, redact, remember_environment

CONTEXT = {"help_option_names": ["-h", "--help"]}


# Commands that may never need MLflow: importing it takes seconds, most of `status`'s time.
WITHOUT_MLFLOW_AT_START = ("status", "proxy")


def _redact_console() -> None:
    """Everything the command prints is redacted on its way out, whoever prints it."""
    remember_environment()
    sys.stdout = RedactingStream.wrap(sys.stdout, 1)
    sys.stderr = RedactingStream.wrap(sys.stderr, 2)


def _setup_logging(import_mlflow: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    ours = logging.getLogger("mlflow_sweeper")
    ours.handlers[:] = [handler]
    ours.setLevel(logging.DEBUG if os.environ.get("MLFLOW_SWEEPER_DEBUG") else logging.INFO)
    ours.propagate = False
    if import_mlflow:
        import mlflow  # noqa: F401 - configures its loggers on import: configure ours after it
    else:  # should MLflow be imported later, it sets its own level from this on import
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "CRITICAL")

    for noisy in ("alembic", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs storage errors with tracebacks; the agent retries them and reports in one line.
    logging.getLogger("mlflow").setLevel(logging.CRITICAL)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna's warnings (a parameter sampled independently, an option deprecated) and Python's
    # come out as the agent's own lines do: timestamped, redacted, and silenced by `--quiet`.
    optuna.logging.disable_default_handler()
    logging.captureWarnings(True)
    for name in ("optuna", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False


def _quiet_libraries() -> None:
    """`--quiet`: only the summary, not the libraries' warnings either."""
    for name in ("optuna", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _guarded(action) -> None:
    """Run an action: user errors print one line and exit with their code, never a traceback."""
    try:
        code = action()
    except SweeperError as exc:
        click.echo(f"mlflow-sweeper: {redact(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.Abort):  # Abort: Ctrl-C or Ctrl-D at a prompt
        click.echo("\nmlflow-sweeper: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, traceback on request
        if os.environ.get("MLFLOW_SWEEPER_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"mlflow-sweeper: unexpected error: {type(exc).__name__}: {redact(str(exc))} "
            "(set MLFLOW_SWEEPER_DEBUG=1 for the traceback)",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    sys.exit(code or 0)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class _Commands(click.Group):
    """Ctrl-C or SIGTERM before a command handles them (while MLflow is imported, say) is an
    interruption too: exit 130, not click's "Aborted!" (exit 1) or the signal's own 143."""

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C, until the agent sets its own
        on_hangup(_interrupt)  # a closed terminal too, unless `nohup` ignores it
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("mlflow-sweeper: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(package_name="mlflow-sweeper")
def main() -> None:
    """Optuna-driven hyperparameter sweeps whose trials are nested MLflow runs."""
    _redact_console()
    _setup_logging(click.get_current_context().invoked_subcommand not in WITHOUT_MLFLOW_AT_START)


@main.command(context_settings=CONTEXT)
@click.argument("configs", nargs=-1, required=True)
@click.option(
    "-j",
    "--n-jobs",
    type=click.IntRange(min=0),
    default=None,
    help="Trials of this agent at once (default 1; with `devices`, one per device group; 0: the default).",
)
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="Stop after this agent has started N trials."
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary: no progress bar, no trial events.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Run the points that failed after all retries again, with a fresh set of attempts.",
)
def sweep(
    configs: tuple[str, ...], n_jobs: int | None, count: int | None, quiet: bool, retry_failed: bool
) -> None:
    """Run the sweeps of CONFIG files (or comma-separated lists), one after another.

    Several agents may run the same config at once, on one machine or many.
    """
    from .agent import Agent
    from .config import load_configs
    from .progress import Reporter

    def action() -> int:
        if quiet:
            _quiet_libraries()
        loaded = load_configs(list(configs), to_run=True)
        jobs = n_jobs or None  # 0 (the entry point's default): not given
        agent = Agent(n_jobs=jobs, count=count, reporter=Reporter(quiet=quiet), retry_failed=retry_failed)
        agent.install_signal_handlers()
        try:
            return agent.run(loaded)
        except SystemExit as exc:  # second Ctrl-C
            return int(exc.code or EXIT_INTERRUPTED)

    _guarded(action)


@main.command(context_settings=CONTEXT)
@click.argument("configs", nargs=-1, required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--purge", is_flag=True, help="Delete MLflow runs permanently instead of soft-deleting.")
def delete(configs: tuple[str, ...], yes: bool, purge: bool) -> None:
    """Delete the sweeps of CONFIG files from both storages (Optuna study and MLflow runs)."""
    from .admin import delete_sweep, sweep_exists
    from .config import load_configs
    from .record import end_admin_run

    def action() -> int:
        loaded = load_configs(list(configs))
        names = ", ".join(c.identity for c in loaded)
        if not yes and not any(sweep_exists(config, purge) for config in loaded):
            for config in loaded:  # nothing to confirm: not an error (exit 0)
                click.echo(f"{config.identity}: no such sweep, nothing to delete")
            end_admin_run(loaded, "delete")
            return 0
        if not yes:
            if sys.stdin is None or not sys.stdin.isatty():  # none at all: `<&-`
                click.echo(
                    f"mlflow-sweeper: refusing to delete {names} without --yes (no terminal to ask)", err=True
                )
                return EXIT_USAGE
            how = "permanently" if purge else "(MLflow runs restorable)"
            try:
                confirmed = click.confirm(f"Delete sweep(s) {names} {how}?", default=False)
            except (click.Abort, KeyboardInterrupt):  # Ctrl-C or Ctrl-D instead of an answer
                click.echo("\nmlflow-sweeper: interrupted, nothing deleted", err=True)
                return EXIT_INTERRUPTED
            if not confirmed:  # an answer, not an error
                click.echo("nothing deleted")
                end_admin_run(loaded, "delete")
                return 0
        for config in loaded:
            click.echo(delete_sweep(config, purge=purge).message())
        end_admin_run(loaded, "delete")
        return 0

    _guarded(action)


@main.command(context_settings=CONTEXT)
@click.argument("configs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help='One JSON object: {"sweeps": [...]}.')
def status(configs: tuple[str, ...], as_json: bool) -> None:
    """Print each sweep's progress, best trial and parent run."""
    from .admin import sweep_status, sweep_status_data
    from .config import load_configs

    def action() -> int:
        loaded = load_configs(list(configs))
        if as_json:
            click.echo(json.dumps({"sweeps": [sweep_status_data(config) for config in loaded]}))
        else:
            for config in loaded:
                click.echo(sweep_status(config))
        if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`; MLflow is not imported otherwise
            from .record import end_admin_run

            end_admin_run(loaded, "status")
        return 0

    _guarded(action)


@main.command(context_settings=CONTEXT)
@click.argument("config")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="File for the new config, a new one; '-' for standard output "
    "(default: <config>-refined.yaml next to CONFIG).",
)
def refine(config: str, out: str | None) -> None:
    """Write the config of a follow-up sweep: ranges narrowed around the best trials, widened where
    the best sit on a bound, negligible parameters fixed, warm-started from this sweep."""
    from pathlib import Path

    from .config import load_config
    from .refine import STDOUT, refine_sweep

    def action() -> int:
        given = Path(out) if out else None
        path, advice, text = refine_sweep(load_config(config, to_run=False), given)
        to_stdout = given == STDOUT
        if to_stdout:  # the config alone on standard output; what changed on standard error
            click.echo(text, nl=False)
        where = f"the config of sweep {path.stem} on standard output" if to_stdout else str(path)
        click.echo(f"refine: {where} ({len(advice.changed)} parameter(s) changed)", err=to_stdout)
        # nothing changed: why each was kept (the new sweep has nothing new to run but what fits)
        for change in advice.changed or advice.changes:
            click.echo(f"  {change.name}: {change.why}", err=to_stdout)
        return 0

    _guarded(action)


@main.command(context_settings=CONTEXT)
@click.argument("config")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the report (default: output_dir/reports/<experiment>_<sweep_name>/).",
)
@click.option("--log", "log_it", is_flag=True, help="Also log the report under report/ of the parent run.")
def report(config: str, out_dir: str | None, log_it: bool) -> None:
    """Build the report of the sweep of CONFIG (mid-sweep too): trials.csv, report.html, PNGs."""
    from .admin import sweep_report
    from .config import load_config

    def action() -> int:
        built, logged = sweep_report(load_config(config, to_run=False), out_dir, log_it)
        click.echo(f"report: {built.out_dir / 'report.html'} ({len(built.files)} files)")
        for problem in built.problems:
            click.echo(f"report: not built: {problem}", err=True)
        if logged is True:
            click.echo("report: logged under report/ of the parent run")
        return 1 if logged is False else 0

    _guarded(action)


@main.command(context_settings=CONTEXT)
@click.argument("storage_url")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True, help="Port.")
@click.option("--token-file", default=None, help="A file holding the token every call must carry.")
@click.option("--tls-cert", default=None, help="PEM certificate: serve TLS (agents: grpcs://HOST:PORT).")
@click.option("--tls-key", default=None, help="PEM private key of --tls-cert.")
@click.option("--insecure", is_flag=True, help="Allow listening beyond this machine without a token.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Processes serving the port [default: one per core, at most 4; 1 for SQLite].",
)  # fmt: skip
def proxy(
    storage_url: str, host: str, port: int, token_file: str | None, tls_cert: str | None, tls_key: str | None,
    insecure: bool, workers: int | None,
) -> None:  # fmt: skip
    """Serve Optuna's gRPC storage proxy in front of the database STORAGE_URL.

    Agents then use `optuna_storage: grpc://HOST:PORT` and share the proxy's few connections.
    """

    def action() -> int:
        from .proxy_auth import check_listen, read_token_file

        # a refusal to listen comes at once, not after the seconds the proxy's imports take
        check_listen(host, read_token_file(token_file) if token_file else None, insecure)
        from .proxy import serve

        serve(
            storage_url, host=host, port=port, token_file=token_file, tls_cert=tls_cert, tls_key=tls_key,
            insecure=insecure, workers=workers,
        )  # fmt: skip
        return EXIT_INTERRUPTED  # it serves until Ctrl-C or SIGTERM stops it

    _guarded(action)
