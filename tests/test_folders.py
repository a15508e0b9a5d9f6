"""The folder each sweep keeps on this machine for its trial logs and reports."""

from __future__ import annotations

from mlflow_sweeper.config.folders import safe_name, sweep_folder


def test_a_sweep_gets_experiment_underscore_sweep_name(tmp_path):
    assert sweep_folder(tmp_path, "my exp/s1") == tmp_path / "my_exp_s1"
    assert safe_name("team/a/b") == "team_a_b"


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
