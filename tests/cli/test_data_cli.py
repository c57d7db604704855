from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sera_cli.cli.data import app
from sera_cli.errors import SeraError

runner = CliRunner()


def test_synth_then_check(tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    result = runner.invoke(
        app, ["synth", "--out", str(out), "--images", "8", "--seed", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["images"] == {"train": 5, "val": 1, "testA": 1, "testB": 1}
    assert summary["dataset"] == "synth" and sum(summary["sentences"].values()) > 0

    result = runner.invoke(app, ["check", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bad"] == 0 and report["split_by"] == "unc"
    assert {s: c["images"] for s, c in report["splits"].items()} == summary["images"]
    assert {s: c["sentences"] for s, c in report["splits"].items()} == summary["sentences"]

    result = runner.invoke(app, ["check", str(out), "--dataset", "synth"])
    assert result.exit_code == 0 and "testB" in result.stdout

    next((out / "images").rglob("*.jpg")).unlink()
    result = runner.invoke(app, ["check", str(out), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["bad"] >= 1
    result = runner.invoke(app, ["check", str(out)])
    assert result.exit_code == 1 and "missing image file" in result.stdout


def test_synth_human_output_and_bad_values(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "--out", str(tmp_path), "--images", "4"])
    assert result.exit_code == 0, result.output
    assert "Wrote 4 images" in result.stdout and "appearance" in result.stdout
    assert runner.invoke(app, ["synth", "--out", str(tmp_path), "--images", "3"]).exit_code == 2


def test_check_needs_a_dataset_choice_when_ambiguous(tmp_path: Path) -> None:
    from sera_cli.data.synth import synthesize

    synthesize(tmp_path, 4, name="synth")
    synthesize(tmp_path, 4, name="refcoco")
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert isinstance(result.exception, SeraError)
    assert "2 datasets (refcoco, synth)" in str(result.exception)
    assert runner.invoke(app, ["check", str(tmp_path), "--dataset", "refcoco"]).exit_code == 0
    with pytest.raises(SeraError, match="data folder not found"):
        runner.invoke(app, ["check", str(tmp_path / "nope")], catch_exceptions=False)


def test_importing_the_data_commands_does_not_import_torch() -> None:
    code = "import sys, sera_cli.cli.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
