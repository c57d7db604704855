"""Run directories: round trip, what is saved, and the errors a broken run gives."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_inputs
from safetensors.torch import load_file, save_file

from sera_cli.config import ModelConfig
from sera_cli.errors import SeraError
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry, create_registry
from sera_cli.runs.checkpoints import load_run, save_run


def _perturbed(cfg: ModelConfig, registry: Registry) -> torch.nn.Module:
    torch.manual_seed(1)
    model = build_model(cfg, registry)
    with torch.no_grad():  # move every zero-initialized module off zero, so the test sees them
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path, tiny_cfg: ModelConfig,
                                                      builtin_registry: Registry) -> None:
    model = _perturbed(tiny_cfg, builtin_registry)
    inputs = tiny_inputs(tiny_cfg)
    save_run(tmp_path / "run", model, builtin_registry)
    assert not list((tmp_path / "run").glob("*.tmp"))
    loaded, config = load_run(tmp_path / "run", builtin_registry)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs).logits, model(*inputs).logits)
    assert config["model"]["experts"] == tiny_cfg.experts
    assert config["plugins"]["fusion expert context"]["plugin"] == "sera_builtin"
    keys = load_file(tmp_path / "run" / "model.safetensors")
    assert not any(k.startswith("module.") for k in keys)


def test_bias_ln_run_saves_only_trained_backbone_tensors(tmp_path: Path, tiny_cfg: ModelConfig,
                                                         builtin_registry: Registry) -> None:
    cfg = dataclasses.replace(tiny_cfg, tune="bias-ln")
    cfg.vision = dataclasses.replace(cfg.vision, hub_id="pretend/pretrained")
    model = build_model(dataclasses.replace(tiny_cfg, tune="bias-ln"), builtin_registry)
    model.cfg = cfg  # as if the backbone came from the hub
    save_run(tmp_path / "run", model, builtin_registry)
    keys = load_file(tmp_path / "run" / "model.safetensors").keys()
    dino = [k for k in keys if k.startswith("vision.dinov2.")]
    assert dino and all(k.endswith("bias") or ".norm" in k or "layernorm" in k for k in dino)
    assert "vision.dinov2.embeddings.patch_embeddings.projection.weight" not in keys
    assert any(k.startswith("fusion.") for k in keys)


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path, tiny_cfg: ModelConfig,
                                             builtin_registry: Registry) -> None:
    save_run(tmp_path / "run", build_model(tiny_cfg, builtin_registry), builtin_registry)
    path = tmp_path / "run" / "model.safetensors"
    state = load_file(path)
    state["decoder.norm.weight"] = torch.ones(3)
    save_file(state, path)
    with pytest.raises(SeraError, match=r"'decoder.norm.weight' has shape \(3,\), the model "
                                        r"expects \(64,\)"):
        load_run(tmp_path / "run", builtin_registry)


def test_missing_plugin_names_the_package(tmp_path: Path, tiny_cfg: ModelConfig,
                                          builtin_registry: Registry) -> None:
    save_run(tmp_path / "run", build_model(tiny_cfg, builtin_registry), builtin_registry)
    config_path = tmp_path / "run" / "config.json"
    config = json.loads(config_path.read_text())
    config["model"]["experts"].append("dilated")
    config["plugins"]["fusion expert dilated"] = {"plugin": "dilated",
                                                  "distribution": "sera-dilated",
                                                  "version": "0.2.0"}
    config_path.write_text(json.dumps(config))
    with pytest.raises(SeraError, match="needs fusion expert 'dilated'.*pip install sera-dilated"):
        load_run(tmp_path / "run", builtin_registry)
    with pytest.raises(SeraError, match="needs adapter expert 'spatial'.*sera -p MODULE"):
        load_run(tmp_path / "run", create_registry(entry_points=False))


@pytest.mark.parametrize("damage,message", [
    (lambda run: (run / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    (lambda run: (run / "config.json").unlink(), "config.json is missing"),
    (lambda run: (run / "model.safetensors").unlink(), "model.safetensors is missing"),
    (lambda run: (run / "model.safetensors").write_bytes(
        (run / "model.safetensors").read_bytes()[:1000]), "not a readable safetensors"),
    (lambda run: (run / "config.json").write_text(json.dumps(
        {**json.loads((run / "config.json").read_text()), "format_version": 99})),
     "format version 99, newer than"),
])
def test_broken_run_gives_a_clear_error(tmp_path: Path, tiny_cfg: ModelConfig,
                                        builtin_registry: Registry, damage, message) -> None:  # type: ignore[no-untyped-def]
    run = save_run(tmp_path / "run", build_model(tiny_cfg, builtin_registry), builtin_registry)
    damage(run)
    with pytest.raises(SeraError, match=message):
        load_run(run, builtin_registry)


def test_missing_run_folder(tmp_path: Path) -> None:
    with pytest.raises(SeraError, match="checkpoint folder .*nope does not exist"):
        load_run(tmp_path / "nope")


def test_a_run_written_with_the_old_key_names_still_loads(saved_run: Path,
                                                          tmp_path: Path) -> None:
    """sera 0.1 wrote fusion_experts, fusion_router, top_k and loss.z/balance/assignment."""
    import shutil

    from sera_cli.errors import RenamedKeyWarning
    from sera_cli.runs.checkpoints import load_run

    run = tmp_path / "old"
    shutil.copytree(saved_run, run)
    config = json.loads((run / "config.json").read_text())
    model = config["model"]
    model["fusion_experts"], model["fusion_router"] = model.pop("experts"), model.pop("router")
    model["top_k"] = model.pop("topk")
    model["loss"]["z"] = model["loss"].pop("z_loss")
    (run / "config.json").write_text(json.dumps(config))
    with pytest.warns(RenamedKeyWarning, match="'fusion_experts' is read as 'experts'"):
        loaded, _ = load_run(run)
    fresh, _ = load_run(saved_run)
    assert loaded.cfg == fresh.cfg
