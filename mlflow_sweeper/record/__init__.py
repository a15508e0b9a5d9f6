"""The MLflow side of a sweep.

* `tags`: the `sweeper.*` tags that mark a sweep's runs.
* `runs`: the runs' record, `Recorder`: the trial runs, and the parent as `Recorder.parent`.
* `parent`: `ParentRun`, the parent run and the summary it carries (best, Pareto front, stop).
* `lookup`: finding a sweep's experiment and runs.
* `agent_run`: the agent's own run and process (`mlflow run` runs, MLflow's URL printing).
"""

from .agent_run import (
    COMMAND_TAG,
    PARENT_TAG,
    URL_PRINTING,
    current_run_id,
    end_admin_run,
    end_orphaned_agent_run,
    quiet_run_urls,
    tag_agent_run,
    trial_environment,
)
from .parent import ParentRun
from .runs import Recorder, RunReading
from .tags import (
    ATTEMPT_TAG,
    BEST_RUN_TAG,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    PARETO_RUNS_TAG,
    PARETO_TAG,
    REPLACED_BY_TAG,
    ROLE_TAG,
    STOPPED_TAG,
    SWEEP_TAG,
    TRIAL_TAG,
)

__all__ = [
    "ATTEMPT_TAG",
    "BEST_RUN_TAG",
    "COMMAND_TAG",
    "MLFLOW_PARENT_RUN_ID",
    "MLFLOW_RUN_NAME",
    "PARENT_TAG",
    "ParentRun",
    "PARETO_RUNS_TAG",
    "PARETO_TAG",
    "REPLACED_BY_TAG",
    "ROLE_TAG",
    "STOPPED_TAG",
    "SWEEP_TAG",
    "TRIAL_TAG",
    "URL_PRINTING",
    "Recorder",
    "RunReading",
    "current_run_id",
    "end_admin_run",
    "end_orphaned_agent_run",
    "quiet_run_urls",
    "tag_agent_run",
    "trial_environment",
]
