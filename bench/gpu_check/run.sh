#!/bin/bash
# The GPU check of "real training": a real PyTorch sweep with `devices: auto`, two agents on one
# host at once, every trial crashing once after epoch 2 and its retry resuming from the logged
# checkpoint. Run from the repository root on a machine with a GPU and PyTorch:
#   OUT=/tmp/gpu-check bash bench/gpu_check/run.sh
# On a machine that cannot reach a package index, put the wheels of mlflow-skinny, optuna,
# sqlalchemy, alembic, plotly and cmaes (and their dependencies) in WHEELS (default .gpu/wheels):
# they are installed from there. Writes machine.txt, agents.log, status.json, runs.json and
# trials.jsonl (what each trial saw) to OUT; bench/GPU_CHECK.md holds a run's results.
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
REPO=$(pwd); PY=${PY:-python3}
{ nvidia-smi -L; echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"; $PY --version; } > "$OUT/machine.txt" 2>&1
WHEELS=${WHEELS:-.gpu/wheels}
if [ -d "$WHEELS" ]; then
  $PY -m pip install -q --no-index --find-links "$WHEELS" mlflow-skinny==3.17.2 optuna==5.1.0 sqlalchemy alembic plotly cmaes > "$OUT/pip.log" 2>&1 || { cat "$OUT/pip.log"; exit 1; }
fi
$PY -c "import torch, mlflow, optuna; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count(), 'mlflow', mlflow.__version__, 'optuna', optuna.__version__)" >> "$OUT/machine.txt" 2>&1
WORK=$(mktemp -d); cd "$WORK"
cat > sweep.yaml <<YAML
experiment: "gpu-check"
sweep_name: "torch_mlp"
command: "$($PY -c 'import sys; print(sys.executable)') $REPO/bench/gpu_check/train.py"
arg_style: "--name value"
algorithm: "grid"
parameters:
  lr: [0.05, 0.2]
  width: [128, 512]
  epochs: 6
  crash-at: 2
  record: "$OUT/trials.jsonl"
devices: auto
max_retries: 1
spec:
  direction: "maximize"
  metric: "val/accuracy"
YAML
export PYTHONPATH=$REPO PYTHONUNBUFFERED=1
$PY -m mlflow_sweeper sweep sweep.yaml > agent1.log 2>&1 & A=$!
$PY -m mlflow_sweeper sweep sweep.yaml > agent2.log 2>&1 & B=$!
wait $A; ra=$?; wait $B; rb=$?
{ echo "== agent 1 (exit $ra)"; cat agent1.log; echo "== agent 2 (exit $rb)"; cat agent2.log; } > "$OUT/agents.log"
$PY -m mlflow_sweeper status sweep.yaml --json > "$OUT/status.json" 2>&1
$PY - > "$OUT/runs.json" 2>&1 <<'PYEND'
import json
from mlflow.tracking import MlflowClient
client = MlflowClient("sqlite:///mlflow.db")
exp = client.get_experiment_by_name("gpu-check")
rows = []
for run in client.search_runs([exp.experiment_id], max_results=100):
    t = run.data.tags
    rows.append({k: t.get(k) for k in ("sweeper.trial", "sweeper.attempt", "sweeper.devices", "sweeper.resumed_from", "mlflow.parentRunId")}
                | {"run": run.info.run_id, "status": run.info.status, "accuracy": run.data.metrics.get("val/accuracy")})
print(json.dumps(rows, indent=1))
PYEND
echo "agents: $ra $rb"; cat "$OUT/machine.txt"; tail -3 "$OUT/agents.log"
