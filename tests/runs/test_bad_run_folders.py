"""Run folders that cannot be written or resumed are named before any training.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

from pathlib import Path

from helpers import fails, sera


def test_unwritable_run_folder_is_reported_before_training(synth_data_root: Path,
                                                           tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    fails(sera("train", "--data", synth_data_root, "--max-steps", "1", "--batch-size", "4",
               "--out", a_file / "run"), "cannot write to the run folder", str(a_file))


def test_resume_without_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    fails(sera("train", "--resume", tmp_path / "run"), str(tmp_path / "run"))
