#!/bin/sh
# Run a Python program of this project with an interpreter that has its dependencies.
#
#   sh scripts/with_python.sh -m mlflow_sweeper sweep CONFIG ...
#
# The MLproject's entry points go through here. `mlflow run --env-manager local` runs their
# command with whatever `python` comes first on PATH, which without an activated environment is
# often the system's, without MLflow. Tried in order: `python`, the interpreter of the `mlflow`
# command on PATH, the interpreter the `mlflow run` that started this runs in (Linux), `python3`;
# the first that imports mlflow and optuna runs the program.

has_deps() {
    [ -n "$1" ] && "$1" -c "import mlflow, optuna" >/dev/null 2>&1
}

mlflow_python() {
    # The interpreter named on the first line of the `mlflow` script: `#!/path/python` or
    # `#!/usr/bin/env python3`.
    command_path=$(command -v mlflow 2>/dev/null) || return 0
    [ -f "$command_path" ] || return 0
    first=$(head -n 1 "$command_path" 2>/dev/null)
    case "$first" in
        "#!"*) ;;
        *) return 0 ;;
    esac
    set -- ${first#\#!}
    if [ "$(basename "$1")" = env ] && [ $# -ge 2 ]; then
        command -v "$2" 2>/dev/null
    else
        printf '%s\n' "$1"
    fi
}

parent_python() {
    # The interpreter of the `mlflow run` that started this entry point (Linux: the first
    # argument of a process above this one, when it is an absolute path to a python that has
    # the dependencies), so that `/path/to/venv/bin/mlflow run ...` works without that venv on PATH.
    pid=$PPID
    for _ in 1 2 3 4 5; do
        [ -r "/proc/$pid/cmdline" ] && [ -r "/proc/$pid/status" ] || return 0
        first=$(tr '\000' '\n' < "/proc/$pid/cmdline" 2>/dev/null | head -n 1)
        case "$first" in
            /*) case "$(basename "$first" 2>/dev/null)" in
                    python|python[0-9]|python[0-9].[0-9]*)
                        if has_deps "$first"; then printf '%s\n' "$first"; return 0; fi ;;
                esac ;;
        esac
        next=""
        while IFS=':' read -r key value; do
            [ "$key" = PPid ] && next=$value
        done < "/proc/$pid/status" 2>/dev/null
        pid=$(printf '%s' "$next" | tr -d ' \t')
        [ -n "$pid" ] && [ "$pid" != 0 ] || return 0
    done
}

tried=""
for candidate in python "$(mlflow_python)" "$(parent_python)" python3; do
    [ -n "$candidate" ] || continue
    found=$(command -v "$candidate" 2>/dev/null) || continue
    if has_deps "$found"; then
        exec "$found" "$@"
    fi
    tried="$tried $found"
done

cat >&2 <<MESSAGE
mlflow-sweeper: no Python here has MLflow and Optuna (tried:${tried:- none found}).
Activate the environment where mlflow-sweeper is installed before \`mlflow run ... --env-manager local\`
(for example \`. .venv/bin/activate\`), or let MLflow build one: \`mlflow run ... --env-manager virtualenv\`
(or \`--env-manager conda\`).
MESSAGE
exit 2
