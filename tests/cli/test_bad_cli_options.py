"""Bad `sera predict` and `sera eval` options: named in one line before the model loads.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

from pathlib import Path

from helpers import fails, sera, usage_error


def test_bad_predict_and_eval_options(trained_run: Path, images: dict[str, Path],
                                      tmp_path: Path) -> None:
    ok = images["ok"]
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--threshold", "2"),
          "--threshold must be between 0 and 1")
    fails(sera("eval", "--checkpoint", trained_run, "--threshold", "-0.1"), "--threshold")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--device", "tpu"),
          "--device 'tpu'")
    fails(sera("eval", "--checkpoint", trained_run, "--device", "gpu"), "--device 'gpu'")
    usage_error(sera("eval", "--checkpoint", trained_run, "--batch-size", "0"), "--batch-size")
    usage_error(sera("eval", "--checkpoint", trained_run, "--workers", "-1"), "--workers")
    usage_error(sera("train", "--top-k", "2"), "--top-k")
    fails(sera("predict", ok), "give IMAGE and EXPRESSION")
    a_file = tmp_path / "file"
    a_file.write_text("")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--out", tmp_path),
          "--out", "is a folder")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--out", tmp_path / "m.xyz"),
          "--out", "extension '.xyz'")
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--out",
               a_file / "m.png"), "--out", str(a_file))
    fails(sera("predict", ok, "red", "--checkpoint", trained_run, "--overlay",
               a_file / "o.png"), "--overlay", str(a_file))
    batch = tmp_path / "batch.tsv"
    batch.write_text(f"{ok}\tred one\n")
    fails(sera("predict", "--batch", batch, "--checkpoint", trained_run, "--out-dir", a_file),
          "--out-dir", str(a_file))
    batch.write_text(f"{ok} red one\n")
    fails(sera("predict", "--batch", batch, "--checkpoint", trained_run),
          str(batch), "line 1", "IMAGE<TAB>EXPRESSION")
    fails(sera("eval", "--checkpoint", trained_run, "--save-masks", a_file / "masks"),
          "--save-masks", str(a_file))
    fails(sera("data", "synth", "--out", a_file / "data", "--images", "4"), str(a_file))
