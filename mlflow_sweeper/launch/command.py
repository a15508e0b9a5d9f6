"""`command` trials: argv without a shell (placeholders filled, the other parameters appended in
`arg_style`), run in the config's directory with the agent's own `python`."""

from __future__ import annotations

from ..command_line import build_argv
from ..preflight import trial_env_path
from .base import Launcher, TrialHandle, TrialRequest
from .process import ProcessHandle, popen, run_env


class CommandLauncher(Launcher):
    def launch(self, request: TrialRequest) -> TrialHandle:
        absent = self.config.space.absent_from(request.params)
        argv = build_argv(self.config.command or "", request.params, self.config.arg_style, absent)
        run_id = request.runs.create({})
        env = trial_env_path(run_env(run_id, self.tracking_uri, request.experiment_id))
        env.update(request.env)
        process, log_file = popen(
            argv, str(self.config.base_dir), env, self.log_dir / request.log_name, request
        )
        return ProcessHandle(run_id, process, log_file)
