#!/usr/bin/env python3
"""Print pins of the lowest MLflow and Optuna versions pyproject.toml declares (`name==X`).

CI installs the package a second time with these pins and runs the in-process tests and a smoke
sweep, so the declared floor is a tested one.
"""

import re
import sys
import tomllib
from pathlib import Path

PINNED = ("mlflow", "optuna")

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
pins = []
for requirement in project["project"]["dependencies"]:
    match = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", requirement)
    if match and match.group(1).lower() in PINNED:
        pins.append(f"{match.group(1)}=={match.group(2)}")
if len(pins) != len(PINNED):
    sys.exit(f"pyproject.toml must declare a lower bound (>=) for each of {', '.join(PINNED)}")
print("\n".join(pins))
