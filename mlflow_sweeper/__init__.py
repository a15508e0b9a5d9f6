"""mlflow-sweeper: Optuna-driven hyperparameter sweeps as MLflow Projects.

Every trial is a child MLflow run under exactly one parent run per sweep, and many agents on
many machines can share a sweep through its Optuna and MLflow storages.
"""

__version__ = "0.1.0"
