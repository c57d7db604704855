"""Run folders by value, beyond test_checkpoint_values.py: what `saved_state` keeps by default,
a loaded run's own keys, the registry, backbone weights and model class a run loads with
(a full-weights one without its sources), the whole one-line message of each
refusal (missing plugin, weights file, --init-from), and `init_from_run` on models built directly
(tests/engine/test_init_from.py goes through the trainer)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sera_cli import __version__
from sera_cli.config import ModelConfig
from sera_cli.errors import SeraError
from sera_cli.model.sera import SeraModel, build_model
from sera_cli.registry import Registry, default_registry
from sera_cli.runs.checkpoints import (
    init_from_run,
    load_into,
    load_run,
    read_weights,
    save_run,
    saved_state,
)

BACKBONES = ("vision.dinov2.", "text.tower.")
DINO_WEIGHT = "vision.dinov2.embeddings.patch_embeddings.projection.weight"  # frozen in bias-ln
TEXT_WEIGHT = "text.tower.token_embedding.weight"  # frozen in bias-ln


def _bias_ln(cfg: ModelConfig, registry: Registry, vision: bool = True,
             text: bool = False) -> torch.nn.Module:
    """A bias-ln model whose config says its vision (and/or text) backbone came from a source,
    so that its frozen tensors need not be saved."""
    model = build_model(dataclasses.replace(cfg, tune="bias-ln"), registry)
    labelled = dataclasses.replace(cfg, tune="bias-ln")
    if vision:
        labelled.vision = dataclasses.replace(cfg.vision, hub_id="pretend/pretrained")
    if text:
        labelled.text = dataclasses.replace(cfg.text, pretrained="pretend-weights")
    model.cfg = labelled
    return model


def _frozen(model: torch.nn.Module, prefix: str) -> set[str]:
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k for k in model.state_dict() if k.startswith(prefix) and k not in trainable}


def test_a_random_backbone_is_kept_whole_a_sourced_one_only_where_it_trains(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    model = _bias_ln(tiny_cfg, builtin_registry)  # vision from a source, text random
    everything = set(model.state_dict())
    frozen_vision, frozen_text = _frozen(model, "vision.dinov2."), _frozen(model, "text.tower.")
    assert DINO_WEIGHT in frozen_vision and TEXT_WEIGHT in frozen_text
    assert set(saved_state(model)) == everything - frozen_vision  # the default is not full
    assert set(saved_state(model, full=True)) == everything
    both = _bias_ln(tiny_cfg, builtin_registry, text=True)
    assert set(saved_state(both)) == everything - frozen_vision - frozen_text
    random = build_model(dataclasses.replace(tiny_cfg, tune="bias-ln"), builtin_registry)
    assert set(saved_state(random)) == everything  # nothing to reload it from


def test_a_loaded_runs_own_keys_are_kept_but_never_override_this_saves(
        tmp_path: Path, tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    model = _bias_ln(tiny_cfg, builtin_registry)
    run = save_run(tmp_path / "run", model, builtin_registry, full=True,
                   extra={"format_version": 0, "full_weights": False, "train": {"lr": 1.0}})
    config = json.loads((run / "config.json").read_text())
    assert list(config) == ["format_version", "sera_version", "model", "plugins",
                            "full_weights", "train"]
    assert config["format_version"] == 1 and config["sera_version"] == __version__
    assert config["full_weights"] is True and config["train"] == {"lr": 1.0}


def test_a_run_loads_with_the_registry_it_is_given(
        saved_run: Path, builtin_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERA_LOAD_PLUGINS", "")  # the default registry has no plugin at all
    default_registry.cache_clear()
    model, _ = load_run(saved_run, builtin_registry)
    assert not model.training
    with pytest.raises(SeraError, match="not registered"):
        load_run(saved_run)


def _edited_run(saved_run: Path, tmp_path: Path, plugins: object) -> Path:
    """A copy of ``saved_run`` whose model also uses the fusion expert 'dilated'."""
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["experts"].append("dilated")
    config["plugins"] = plugins
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("plugins, hint", [
    ({"fusion expert dilated": {"plugin": "dilated", "distribution": "sera-dilated",
                                "version": "0.2.0"}},
     "install the plugin package 'sera-dilated' (0.2.0): pip install sera-dilated"),
    ({"fusion expert dilated": {"plugin": "dilated"}},
     "load the plugin module 'dilated' with sera -p MODULE"),
    ({"fusion expert dilated": "sera-dilated"}, "load the plugin module '?' with sera -p MODULE"),
    ({}, "load the plugin module '?' with sera -p MODULE"),
    (["not", "a", "section"], "load the plugin module '?' with sera -p MODULE"),
], ids=["distribution", "module only", "damaged entry", "no entry", "damaged section"])
def test_a_missing_plugin_is_named_with_what_to_do(saved_run: Path, tmp_path: Path,
                                                   builtin_registry: Registry, plugins: object,
                                                   hint: str) -> None:
    run = _edited_run(saved_run, tmp_path, plugins)
    with pytest.raises(SeraError) as caught:
        load_run(run, builtin_registry)
    assert str(caught.value) == (f"checkpoint {run} needs fusion expert 'dilated', which is not "
                                 f"registered; {hint}")


def test_weights_that_are_a_folder_or_damaged_are_named(tmp_path: Path, saved_run: Path) -> None:
    folder = tmp_path / "model.safetensors"
    folder.mkdir()
    with pytest.raises(SeraError) as caught:
        read_weights(folder)
    assert str(caught.value) == (f"{folder} is not a file: the run's weights must be a "
                                 "safetensors file")
    with pytest.raises(SeraError) as caught:
        read_weights(tmp_path / "nothing.safetensors")
    assert str(caught.value) == (f"{tmp_path / 'nothing.safetensors'} is missing: the run has "
                                 "no saved weights")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((saved_run / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(SeraError) as caught:
        read_weights(cut)
    assert re.fullmatch(rf"{re.escape(str(cut))} is not a readable safetensors file \(.+\); "
                        "it may be truncated", str(caught.value))


def test_a_partial_state_loads_on_top_of_the_sourced_backbone(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    source = _bias_ln(tiny_cfg, builtin_registry)
    state = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v
             for k, v in saved_state(source).items()}
    model = _bias_ln(tiny_cfg, builtin_registry)
    before = model.state_dict()[DINO_WEIGHT].clone()
    load_into(model, state, Path("run/model.safetensors"))  # lacks the frozen tensors: fine
    after = model.state_dict()
    assert torch.equal(after[DINO_WEIGHT], before)  # left to its source
    assert all(torch.equal(after[k], v) for k, v in state.items())


def test_init_from_copies_every_tensor_or_the_backbones_only(
        saved_run: Path, tiny_cfg: ModelConfig, builtin_registry: Registry,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERA_LOAD_PLUGINS", "")  # only the registry passed in has the plugins
    default_registry.cache_clear()
    theirs = load_file(saved_run / "model.safetensors")
    torch.manual_seed(7)
    model = build_model(tiny_cfg, builtin_registry)
    assert init_from_run(model, saved_run, registry=builtin_registry) == len(theirs)
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())
    torch.manual_seed(7)
    model = build_model(tiny_cfg, builtin_registry)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    backbone = [k for k in theirs if k.startswith(BACKBONES)]
    assert init_from_run(model, saved_run, False, builtin_registry) == len(backbone)
    for key, value in model.state_dict().items():
        assert torch.equal(value, theirs[key] if key.startswith(BACKBONES) else own[key]), key
    assert not torch.equal(own["word_proj.weight"],
                           theirs["word_proj.weight"])  # so the test can tell


def test_init_from_another_width_or_other_experts_is_refused_by_name(
        saved_run: Path, tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    narrow = build_model(dataclasses.replace(tiny_cfg, fusion_dim=32), builtin_registry)
    with pytest.raises(SeraError) as caught:
        init_from_run(narrow, saved_run, registry=builtin_registry)
    assert str(caught.value) == (
        f"--init-from {saved_run}: tensor 'word_proj.weight' has shape (64, 64), this model's "
        "is (32, 64): the runs' presets or widths differ")
    fewer = build_model(dataclasses.replace(tiny_cfg, experts=tiny_cfg.experts[:-1], topk=3),
                        builtin_registry)
    with pytest.raises(SeraError) as caught:
        init_from_run(fewer, saved_run, registry=builtin_registry)
    assert str(caught.value) == (
        f"--init-from {saved_run}: tensor 'fusion.experts.3.fuse.weight' has no place in this "
        "model (another preset or other experts); use --no-init-heads to take the backbones "
        "only")
    assert init_from_run(fewer, saved_run, False, builtin_registry) > 0  # backbones fit


def test_a_full_weights_run_is_rebuilt_without_fetching_its_sources(
        tmp_path: Path, tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    """Its config names a hub DINOv2 and an open_clip tag that do not exist: building from them
    would fail, so the run must be built randomly and filled from its own file."""
    model = _bias_ln(tiny_cfg, builtin_registry, text=True)
    run = save_run(tmp_path / "run", model, builtin_registry, full=True)
    loaded, config = load_run(run, builtin_registry)
    assert config["model"]["vision"]["hub_id"] == "pretend/pretrained"  # the file keeps them
    assert loaded.cfg.vision.hub_id is None and loaded.cfg.text.pretrained is None
    theirs = load_file(run / "model.safetensors")
    assert all(torch.equal(v, theirs[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("option", ["vision_weights", "text_weights"])
def test_a_run_is_built_on_the_backbone_weights_it_is_given(
        saved_run: Path, tmp_path: Path, builtin_registry: Registry,
        monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    """Weights that do not exist are refused by name, so they were used."""
    monkeypatch.delenv("SERA_VISION_WEIGHTS", raising=False)
    monkeypatch.delenv("SERA_TEXT_WEIGHTS", raising=False)
    missing = tmp_path / "no-weights"
    with pytest.raises(SeraError) as caught:
        load_run(saved_run, builtin_registry, **{option: str(missing)})
    flag = "--" + option.replace("_", "-")
    assert str(caught.value) == f"{flag} points at {missing}, which does not exist"


def test_a_run_is_built_as_the_model_class_it_is_given(
        saved_run: Path, builtin_registry: Registry) -> None:
    class Tagged(SeraModel):
        pass

    model, _ = load_run(saved_run, builtin_registry, model_cls=Tagged)
    assert type(model) is Tagged
