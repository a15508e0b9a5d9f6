"""The folder each sweep keeps on this machine for its trial logs and reports."""

from __future__ import annotations

import subprocess
import sys

from mlflow_sweeper.config.folders import existing_sweep_folder, safe_name, sweep_folder


def test_a_sweep_gets_experiment_underscore_sweep_name(tmp_path):
    assert sweep_folder(tmp_path, "my exp/s1") == tmp_path / "my_exp_s1"
    assert safe_name("team/a/b") == "team_a_b"


def test_a_long_sweep_name_is_cut_short_and_told_apart_by_its_hash(tmp_path):
    """File systems take names of at most 255 bytes; sweep names and experiments may be longer."""
    first, second = sweep_folder(tmp_path, "e/" + "a" * 300), sweep_folder(tmp_path, "e/" + "a" * 299 + "b")
    assert len(first.name.encode()) <= 200 and first.is_dir()
    assert second != first and second.is_dir() and len(second.name.encode()) < 255
    assert len(sweep_folder(tmp_path, "é/" + "é" * 200).name.encode()) <= 200


def test_sweeps_whose_safe_names_are_the_same_never_share_a_folder(tmp_path):
    first = sweep_folder(tmp_path, "a_b/c")
    second = sweep_folder(tmp_path, "a/b_c")
    third = sweep_folder(tmp_path, "a/b/c")
    assert first == tmp_path / "a_b_c"
    assert len({first, second, third}) == 3
    assert second.name.startswith("a_b_c-") and third.name.startswith("a_b_c-")
    assert sweep_folder(tmp_path, "a/b_c") == second  # the same sweep, the same folder


def test_a_folder_made_before_owners_were_recorded_goes_to_the_first_sweep_to_look(tmp_path):
    (tmp_path / "a_b_c").mkdir()
    (tmp_path / "a_b_c" / "trial-0.log").write_text("kept")
    assert sweep_folder(tmp_path, "a/b_c") == tmp_path / "a_b_c"
    assert sweep_folder(tmp_path, "a_b/c") != tmp_path / "a_b_c"


def test_delete_finds_a_sweeps_folder_without_making_one(tmp_path):
    assert existing_sweep_folder(tmp_path, "a/b_c") is None and not any(tmp_path.iterdir())
    first, second = sweep_folder(tmp_path, "a_b/c"), sweep_folder(tmp_path, "a/b_c")
    assert existing_sweep_folder(tmp_path, "a_b/c") == first
    assert existing_sweep_folder(tmp_path, "a/b_c") == second
    assert existing_sweep_folder(tmp_path, "x/y") is None


def test_many_processes_claiming_one_folder_agree_on_its_owner(tmp_path):
    """Agents of two sweeps on one host, all at once: each sweep's agents share one folder, and
    the two sweeps never share one (the owner file is never seen half written)."""
    script = (
        "import sys; from pathlib import Path; from mlflow_sweeper.config.folders import sweep_folder; "
        "print(sweep_folder(Path(sys.argv[1]), sys.argv[2]))"
    )
    identities = ["a_b/c", "a/b_c"] * 6
    command = [sys.executable, "-c", script, str(tmp_path)]
    processes = [subprocess.Popen([*command, i], stdout=subprocess.PIPE, text=True) for i in identities]
    chosen = [(i, p.communicate(timeout=60)[0].strip()) for i, p in zip(identities, processes, strict=True)]
    folders = {sweep: {folder for i, folder in chosen if i == sweep} for sweep in ("a_b/c", "a/b_c")}
    assert all(len(one) == 1 for one in folders.values()), folders
    assert folders["a_b/c"] != folders["a/b_c"]
