"""`command` trials: argv without a shell (placeholders filled, the other parameters appended in
`arg_style`), run in the config's directory with the agent's own `python`."""

from __future__ import annotations

from ..command_line import build_argv
from ..preflight import trial_env_path
from .base import Launcher, TrialHandle, TrialRequest
from .process import ProcessHandle, popen, run_env


class CommandLauncher(Launcher):
    def launch(self, request: TrialRequest) -> TrialHandle:
        config = self.config
        absent = config.space.absent_from(request.params)
        argv = build_argv(config.command or "", request.params, config.arg_style, absent)
        # the same argv as the sweep shows it, for the log's header: every `${VAR}` value `***`
        shown_params = request.shown_params if request.shown_params is not None else request.params
        shown = build_argv(config.shown_command or "", shown_params, config.arg_style, absent)
        run_id = request.runs.create({})
        env = trial_env_path(run_env(run_id, self.tracking_uri, request.experiment_id))
        env.update(request.env)
        process, output = popen(
            argv, str(config.base_dir), env, self.log_dir / request.log_name, request, shown=shown
        )
        return ProcessHandle(run_id, process, output)
