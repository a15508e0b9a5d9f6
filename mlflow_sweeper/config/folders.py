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
import os
import tempfile
from pathlib import Path

OWNER_FILE = ".sweep"
LOGS, REPORTS = "logs", "reports"  # under output_dir: a sweep's trial logs, its built reports
MOST_BYTES = 200  # of the plain folder name: with the hash, below file systems' 255


def safe_name(identity: str) -> str:
    """`experiment/sweep_name` as `experiment_sweep_name`, safe as one directory name; a long one
    cut short (two names alike up to there are told apart by the hash, as for any clash)."""
    experiment, _, sweep_name = identity.rpartition("/")
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{experiment}_{sweep_name}")
    while len(name.encode()) > MOST_BYTES:
        name = name[:-1]
    return name


def _candidates(root: Path, identity: str) -> tuple[Path, Path]:
    """(the plain folder, the one with the sweep's hash): its folder is one of them."""
    plain = root / safe_name(identity)
    return plain, root / f"{plain.name}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


@functools.cache
def sweep_folder(root: Path, identity: str) -> Path:
    """`root/<experiment>_<sweep_name>`, or the same with `-<hash>` when another sweep owns that
    folder. Created, with its owner recorded."""
    plain, hashed = _candidates(root, identity)
    if _owner(hashed) == identity:  # it went there before: it stays there
        return hashed
    if _claim(plain, identity):
        return plain
    _claim(hashed, identity)
    return hashed


def existing_sweep_folder(root: Path, identity: str) -> Path | None:
    """The sweep's folder under `root` if it has one; creates nothing (for `delete`)."""
    plain, hashed = _candidates(root, identity)
    if _owner(hashed) == identity:
        return hashed
    owner = _owner(plain)
    return plain if plain.is_dir() and owner in (identity, None) else None


def _owner(folder: Path) -> str | None:
    """The sweep that owns `folder`; None when none has written its name there."""
    try:
        return (folder / OWNER_FILE).read_text(encoding="utf-8")
    except OSError:
        return None


def _claim(folder: Path, identity: str) -> bool:
    """Is `folder` this sweep's? Claimed when no sweep has (a folder made before owners were
    recorded goes to the first sweep that looks). The owner file appears whole or not at all: it
    is written aside, then linked into place, which fails if another sweep's is there."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, written = tempfile.mkstemp(dir=folder, prefix=".sweep-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(identity)
        try:
            os.link(written, folder / OWNER_FILE)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: written in place instead
            with contextlib.suppress(FileExistsError), (folder / OWNER_FILE).open("x") as out:
                out.write(identity)
    finally:
        os.unlink(written)
    owner = _owner(folder)
    return owner is None or owner == identity  # unreadable: as before owners were recorded
