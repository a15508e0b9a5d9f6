"""The MLflow side of a sweep.

* `runs`: the runs' record, `Recorder`: the parent and trial runs and their `sweeper.*` tags.
* `agent_run`: the agent's own run and process (`mlflow run` runs, MLflow's URL printing).
"""

from .agent_run import (
    COMMAND_TAG,
    PARENT_TAG,
    URL_PRINTING,
    current_run_id,
    end_admin_run,
    quiet_run_urls,
    tag_agent_run,
    trial_environment,
)
from .runs import (
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
    Recorder,
    RunReading,
)

__all__ = [
    "ATTEMPT_TAG",
    "BEST_RUN_TAG",
    "COMMAND_TAG",
    "MLFLOW_PARENT_RUN_ID",
    "MLFLOW_RUN_NAME",
    "PARENT_TAG",
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
    "quiet_run_urls",
    "tag_agent_run",
    "trial_environment",
]
