"""`command` trials: argv without a shell, `name=value` tokens, run in the config's directory."""

from __future__ import annotations

import shlex

from .base import Launcher, TrialHandle, TrialRequest, text
from .process import ProcessHandle, popen, run_env


class CommandLauncher(Launcher):
    def launch(self, request: TrialRequest) -> TrialHandle:
        argv = shlex.split(self.config.command or "")
        argv += [f"{name}={text(value)}" for name, value in request.params.items()]
        run_id = request.runs.create({})
        env = run_env(run_id, self.tracking_uri, request.experiment_id)
        process, log_file = popen(argv, str(self.config.base_dir), env, self.log_dir / request.log_name)
        return ProcessHandle(run_id, process, log_file)
