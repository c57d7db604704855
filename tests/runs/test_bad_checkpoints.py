"""Damaged run folders: each damage is named in one line, with what to do.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import fails, sera


def _broken_run(saved_run: Path, tmp_path: Path, damage: str) -> Path:
    run = tmp_path / f"run-{damage}"
    shutil.copytree(saved_run, run)
    weights, config_path = run / "model.safetensors", run / "config.json"
    config = json.loads(config_path.read_text())
    if damage == "missing weights":
        weights.unlink()
    elif damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "config not json":
        config_path.write_text("{'model': sera-tiny,")
    elif damage == "newer format":
        config["format_version"] = 99
    elif damage == "malformed model section":
        config["model"]["fusion_dim"] = "wide"
    elif damage == "zero patch size":
        config["model"]["vision"]["patch_size"] = 0
    elif damage == "wrong shape":
        from safetensors.torch import load_file, save_file

        state = load_file(weights)
        state["fusion.experts.0.project.weight"] = state["fusion.experts.0.project.weight"][:1]
        save_file(state, weights)
    elif damage in ("expert not installed", "router not installed"):
        key, name = (("experts", "warp"), ("router", "hash"))[
            damage == "router not installed"]
        if key == "experts":
            config["model"][key][0] = name
            config["plugins"][f"fusion expert {name}"] = {
                "plugin": "warp", "distribution": "sera-warp-experts", "version": "0.3"}
        else:
            config["model"][key] = name
            config["plugins"][f"router {name}"] = {
                "plugin": "hashrouter", "distribution": "sera-hash-router", "version": "1.0"}
    if damage in ("newer format", "malformed model section", "zero patch size",
                  "expert not installed", "router not installed"):
        config_path.write_text(json.dumps(config))
    return run


BAD_RUNS = [
    ("missing weights", ["model.safetensors", "is missing"]),
    ("truncated weights", ["model.safetensors", "truncated"]),
    ("config not json", ["config.json", "not valid JSON"]),
    ("newer format", ["config.json", "format version 99", "upgrade sera"]),
    ("malformed model section", ["config.json", "'model.fusion_dim' must be a whole number"]),
    ("zero patch size", ["config.json", "patch_size 0 must both be positive"]),
    ("wrong shape", ["fusion.experts.0.project.weight", "has shape (1, "]),
    ("expert not installed", ["fusion expert 'warp'", "pip install sera-warp-experts"]),
    ("router not installed", ["router 'hash'", "pip install sera-hash-router"]),
]


@pytest.mark.parametrize("damage,culprits", BAD_RUNS, ids=[d for d, _ in BAD_RUNS])
def test_broken_checkpoint_is_named(saved_run: Path, images: dict[str, Path], tmp_path: Path,
                                    damage: str, culprits: list[str]) -> None:
    run = _broken_run(saved_run, tmp_path, damage)
    result = sera("predict", images["ok"], "red one", "--checkpoint", run,
                  "--out", tmp_path / "m.png")
    fails(result, str(run), *culprits)
    if damage == "truncated weights":  # eval goes through the same loader
        fails(sera("eval", "--checkpoint", run), str(run), *culprits)


def test_missing_run_folder_is_named(tmp_path: Path, images: dict[str, Path]) -> None:
    fails(sera("predict", images["ok"], "red one", "--checkpoint", tmp_path / "no-run"),
          str(tmp_path / "no-run"), "does not exist")
    fails(sera("eval", "--checkpoint", tmp_path / "no-run"), str(tmp_path / "no-run"))
    fails(sera("train", "--resume", tmp_path / "no-run"), str(tmp_path / "no-run"))
