"""plugins/sera-dilated, the example third-party plugin: an installable distribution whose entry
point sera finds, whose expert trains beside the built-in ones and is recorded in the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sera_builtin

from sera_cli.config.layering import build_configs
from sera_cli.engine.training import Trainer
from sera_cli.errors import SeraError
from sera_cli.registry import create_registry
from sera_cli.runs.checkpoints import load_run

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "sera-dilated"


def test_distribution_declares_its_entry_point_and_one_named_package() -> None:
    meta = tomllib.loads((PLUGIN / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "sera-dilated"
    assert meta["project"]["entry-points"]["sera"] == {"dilated": "sera_dilated"}
    assert meta["tool"]["setuptools"]["packages"] == ["sera_dilated"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution built and installed into a folder of its own (the test environment is
    left as it was); a copy is built so that no build files land in the repository."""
    tmp = tmp_path_factory.mktemp("sera-dilated")
    source, target = tmp / "source", tmp / "site"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
                   check=True, capture_output=True, timeout=300)
    return target


def test_installed_distribution_is_found_through_its_entry_point(installed: Path) -> None:
    top_level = sorted(p.name for p in installed.iterdir() if not p.name.endswith(".dist-info"))
    assert top_level == ["sera_dilated"]  # never a top-level "plugins" package
    env = {**os.environ, "PYTHONPATH": str(installed),
           "SERA_LOAD_PLUGINS": "builtin,sera-dilated"}
    result = subprocess.run([sys.executable, "-m", "sera_cli", "experts", "list", "--json"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    dilated = next(e for e in json.loads(result.stdout)["experts"] if e["name"] == "dilated")
    assert (dilated["stage"], dilated["distribution"], dilated["version"]) == (
        "fusion", "sera-dilated", "0.1.0")


@pytest.mark.slow  # the fast suite trains these same files through docs/plugins.md's test
def test_trains_beside_the_builtin_experts_and_is_required_to_load(
        tmp_path: Path, synth_data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN))
    import sera_dilated

    registry = create_registry(plugins=[sera_builtin, sera_dilated], entry_points=False)
    model_cfg, train_cfg = build_configs({
        "preset": "sera-tiny", "data": str(synth_data_root), "max_steps": 2, "batch_size": 4,
        "val_batch_size": 8, "experts": "spatial,context,boundary,shape,dilated",
        "topk": 5})  # every expert in every step, so the new one surely trains
    run = tmp_path / "run"
    trainer = Trainer(model_cfg, train_cfg, run, synth_data_root, registry=registry)
    assert trainer.fit()["steps"] == 2
    dilated = trainer.model.fusion.experts[4]
    assert type(dilated).__name__ == "DilatedExpert"
    assert dilated.fuse.weight.abs().sum() > 0  # moved away from its zero initialization

    model, _ = load_run(run, registry=registry)
    assert len(model.fusion.experts) == 5
    without = create_registry(plugins=[sera_builtin], entry_points=False)
    with pytest.raises(SeraError, match="needs fusion expert 'dilated'.*sera_dilated"):
        load_run(run, registry=without)
