"""The folder a sweep keeps on this machine under `output_dir/logs` and `output_dir/reports`.

`<experiment>_<sweep_name>` made safe as one directory name can be the same for two sweeps
(`a_b`/`c` and `a`/`b_c`, or `a/b`/`c` and `a_b`/`c`). The first sweep to use the folder
writes its name into it; another sweep mapped to the same folder gets one with a short hash of
its name appended, so two sweeps never share trial logs or reports.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from pathlib import Path

OWNER_FILE = ".sweep"


def safe_name(identity: str) -> str:
    """`experiment/sweep_name` as `experiment_sweep_name`, safe as one directory name."""
    experiment, _, sweep_name = identity.rpartition("/")
    name = f"{experiment}_{sweep_name}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


@functools.cache
def sweep_folder(root: Path, identity: str) -> Path:
    """`root/<experiment>_<sweep_name>`, or the same with `-<hash>` when another sweep owns that
    folder. Created, with its owner recorded."""
    plain = root / safe_name(identity)
    if _owned_by(plain, identity):
        return plain
    own = root / f"{plain.name}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"
    _owned_by(own, identity)
    return own


def _owned_by(folder: Path, identity: str) -> bool:
    """Is `folder` this sweep's? Claimed when no sweep has claimed it (a folder written before
    owners were recorded goes to the first sweep that looks)."""
    folder.mkdir(parents=True, exist_ok=True)
    owner = folder / OWNER_FILE
    with contextlib.suppress(FileExistsError):
        with owner.open("x", encoding="utf-8") as out:
            out.write(identity)
        return True
    with contextlib.suppress(OSError):
        return owner.read_text(encoding="utf-8") == identity
    return True  # an owner file that cannot be read: as before owners were recorded
