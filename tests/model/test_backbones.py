"""Pretrained weights decide the backbone, or are refused: tiny models of each real class (plain
DINOv2, DINOv2 with registers, open_clip ViT-B-16-shaped CLIPs with GELU and QuickGELU), saved
as the hub stores them, load into their own architecture with the outputs of the library's own
model, or fail with one line naming what the run expects and what the weights hold."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from helpers import fails, sera
from safetensors.torch import load_file, save_file
from tiny_weights import EXPECTED_TEXT, EXPECTED_VISION, clip_model_cfg, dinov2, save_clip

from sera_cli.config import ModelConfig, TextConfig, VisionConfig, preset
from sera_cli.errors import SeraError
from sera_cli.model.backbones import (
    build_clip_text,
    build_dinov2,
    match_weights,
    num_prefix_tokens,
)


def tiny_run_cfg(vision: VisionConfig | None = None, text: TextConfig | None = None
                 ) -> ModelConfig:
    """sera-tiny's modules on these backbone sections (the others left random-init, so that
    nothing asks the hub)."""
    cfg = preset("sera-tiny")
    cfg.vision = copy.deepcopy(vision) if vision else VisionConfig(**{
        **EXPECTED_VISION.__dict__, "hub_id": None})
    cfg.text = copy.deepcopy(text) if text else TextConfig(**{**EXPECTED_TEXT.__dict__,
                                                              "pretrained": None})
    return cfg


IDS = torch.tensor([[49406, 320, 1929, 3075, 49407] + [0] * 12,
                    [49406, 518, 786, 530, 518, 1823, 49407] + [0] * 10])


def encode_text(clip: torch.nn.Module) -> torch.Tensor:
    """open_clip's own sentence features, at its 77 positions (the mask is causal, so the
    padding after sera's 17 tokens changes nothing)."""
    with torch.no_grad():
        return clip.encode_text(torch.nn.functional.pad(IDS, (0, 77 - IDS.shape[1])))


@pytest.mark.parametrize("kind,class_name,prefix", [("plain", "Dinov2Model", 1),
                                                    ("registers", "Dinov2WithRegistersModel", 5)])
def test_each_dinov2_loads_into_its_own_class(tmp_path: Path, kind: str, class_name: str,
                                              prefix: int) -> None:
    source = dinov2(kind)
    source.save_pretrained(tmp_path / "dino")
    cfg = match_weights(tiny_run_cfg(EXPECTED_VISION), vision_weights=str(tmp_path / "dino"))
    assert cfg.vision.arch == ("dinov2" if kind == "plain" else "dinov2-reg")
    loaded = build_dinov2(cfg.vision, cfg.image_size, weights=str(tmp_path / "dino")).eval()
    assert type(loaded).__name__ == class_name and num_prefix_tokens(loaded) == prefix
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(pixels).last_hidden_state, source(pixels).last_hidden_state)


@pytest.mark.parametrize("kind,expected,held", [
    ("plain", EXPECTED_VISION,
     "expects arch dinov2-reg (Dinov2WithRegistersModel), register_tokens 4; the weights hold "
     "arch dinov2 (Dinov2Model), register_tokens 0"),
    ("registers", VisionConfig(arch="dinov2", hidden_size=32, layers=4, heads=2, patch_size=8),
     "expects arch dinov2 (Dinov2Model), register_tokens 0; the weights hold arch dinov2-reg "
     "(Dinov2WithRegistersModel), register_tokens 4"),
    ("registers", VisionConfig(hidden_size=64, layers=12, heads=2, patch_size=8),
     "expects hidden_size 64, layers 12; the weights hold hidden_size 32, layers 4"),
])
def test_dinov2_of_another_architecture_is_refused(tmp_path: Path, kind: str,
                                                   expected: VisionConfig, held: str) -> None:
    dinov2(kind).save_pretrained(tmp_path / "dino")
    with pytest.raises(SeraError) as caught:
        build_dinov2(expected, 32, weights=str(tmp_path / "dino"))
    message = str(caught.value)
    assert held in message and f"--vision-weights {tmp_path / 'dino'}" in message
    assert "\n" not in message


@pytest.mark.parametrize("change,culprit", [("drop", "missing tensor 'embeddings.register_tokens'"),
                                            ("add", "unexpected tensor 'extra.weight'")])
def test_a_dinov2_checkpoint_with_missing_or_extra_tensors_is_an_error(
        tmp_path: Path, change: str, culprit: str) -> None:
    folder = tmp_path / "dino"
    dinov2("registers").save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    if change == "drop":
        del state["embeddings.register_tokens"]
    else:
        state["extra.weight"] = torch.ones(3)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SeraError, match=culprit):
        build_dinov2(EXPECTED_VISION, 32, weights=str(folder))


def test_a_folder_that_is_not_dinov2_is_refused(tmp_path: Path) -> None:
    dinov2("plain").save_pretrained(tmp_path / "vit")
    config = json.loads((tmp_path / "vit" / "config.json").read_text())
    (tmp_path / "vit" / "config.json").write_text(json.dumps({**config, "model_type": "vit"}))
    with pytest.raises(SeraError, match="holds a 'vit' model, not DINOv2"):
        match_weights(tiny_run_cfg(), vision_weights=str(tmp_path / "vit"))


@pytest.mark.parametrize("quick_gelu", [False, True], ids=["gelu", "quickgelu"])
def test_each_clip_loads_with_its_own_activation(tmp_path: Path, quick_gelu: bool) -> None:
    clip = save_clip(tmp_path / "clip", clip_model_cfg(quick_gelu))
    # The run starts with the other activation: the weights' config decides.
    start = tiny_run_cfg(text=TextConfig(**{**EXPECTED_TEXT.__dict__,
                                            "quick_gelu": not quick_gelu}))
    cfg = match_weights(start, text_weights=str(tmp_path / "clip"))
    assert cfg.text.quick_gelu is quick_gelu
    text = build_clip_text(cfg.text, weights=str(tmp_path / "clip")).eval()
    with torch.no_grad():
        words, sentence, pad = text(IDS)
    assert torch.allclose(sentence, encode_text(clip), atol=1e-6, rtol=0)
    assert words.shape == (2, 17, 32) and pad.equal(IDS == 0)
    # The same tensors under the other activation give other features: the choice matters.
    wrong = build_clip_text(TextConfig(**{**cfg.text.__dict__, "pretrained": None,
                                          "quick_gelu": not quick_gelu})).eval()
    wrong.tower.load_state_dict(text.tower.state_dict())
    with torch.no_grad():
        assert not torch.allclose(wrong(IDS)[1], sentence, atol=1e-4)


def test_clip_of_another_activation_or_size_is_refused(tmp_path: Path) -> None:
    save_clip(tmp_path / "laion", clip_model_cfg(quick_gelu=False))  # LAION-like: GELU
    with pytest.raises(SeraError) as caught:
        build_clip_text(EXPECTED_TEXT, weights=str(tmp_path / "laion"))
    assert str(caught.value) == (
        f"--text-weights {tmp_path / 'laion'}: the run expects quick_gelu true (QuickGELU); the "
        "weights hold quick_gelu false (GELU)")
    wide = TextConfig(**{**EXPECTED_TEXT.__dict__, "width": 64, "quick_gelu": False})
    with pytest.raises(SeraError, match="expects width 64; the weights hold width 32"):
        build_clip_text(wide, weights=str(tmp_path / "laion" / "open_clip_model.safetensors"))


def test_clip_text_tower_sera_does_not_build_is_refused(tmp_path: Path) -> None:
    model_cfg = clip_model_cfg(quick_gelu=False)
    save_clip(tmp_path / "clip", model_cfg)
    model_cfg["text_cfg"]["pool_type"] = "eos"
    (tmp_path / "clip" / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    with pytest.raises(SeraError, match="sets pool_type='eos', which sera's CLIP text tower "
                                        "does not build"):
        match_weights(tiny_run_cfg(text=EXPECTED_TEXT), text_weights=str(tmp_path / "clip"))


@pytest.mark.parametrize("change,culprit", [
    ("drop", "missing ln_final.weight"),
    ("add", "unexpected tensor transformer.resblocks.2.ln_1.weight"),  # a third layer
])
def test_a_clip_checkpoint_with_missing_or_extra_tensors_is_an_error(
        tmp_path: Path, change: str, culprit: str) -> None:
    save_clip(tmp_path / "clip", clip_model_cfg(quick_gelu=True))
    path = tmp_path / "clip" / "open_clip_model.safetensors"
    state = load_file(path)
    assert any(k.startswith("visual.") for k in state)  # a full CLIP: its vision tower is skipped
    if change == "drop":
        del state["ln_final.weight"]
    else:
        state["transformer.resblocks.2.ln_1.weight"] = torch.ones(32)
    save_file(state, path)
    with pytest.raises(SeraError, match=culprit):
        build_clip_text(EXPECTED_TEXT, weights=str(path))


def test_clip_weights_without_their_config_are_refused(tmp_path: Path) -> None:
    """A bare state dict does not say GELU or QuickGELU: guessing is how the bug began."""
    save_clip(tmp_path / "clip", clip_model_cfg(quick_gelu=True))
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes((tmp_path / "clip" / "open_clip_model.safetensors").read_bytes())
    with pytest.raises(SeraError, match="no open_clip_config.json beside the weights"):
        build_clip_text(EXPECTED_TEXT, weights=str(bare))


def test_context_longer_than_the_weights_positions_is_refused(tmp_path: Path) -> None:
    save_clip(tmp_path / "clip", clip_model_cfg(quick_gelu=True))
    long = TextConfig(**{**EXPECTED_TEXT.__dict__, "context_length": 78})
    with pytest.raises(SeraError, match="context_length 78 is longer than the 77 positions"):
        build_clip_text(long, weights=str(tmp_path / "clip"))


def test_no_run_starts_on_weights_it_cannot_build(tmp_path: Path, synth_data_root: Path
                                                  ) -> None:
    """`sera train` reads the weights' config before anything else: refused, nothing written."""
    dinov2("plain").save_pretrained(tmp_path / "dino")
    config = json.loads((tmp_path / "dino" / "config.json").read_text())
    (tmp_path / "dino" / "config.json").write_text(json.dumps({**config, "model_type": "vit"}))
    run = tmp_path / "run"
    fails(sera("train", "--data", synth_data_root, "--vision-weights", tmp_path / "dino",
               "--max-steps", "1", "--out", run), "holds a 'vit' model, not DINOv2")
    assert not (run / "config.json").exists()


def test_missing_weights_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(SeraError, match=f"--vision-weights points at {tmp_path / 'nope'}"):
        build_dinov2(VisionConfig(), 448, weights=str(tmp_path / "nope"))


def test_weights_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    dinov2("plain").save_pretrained(tmp_path / "dino")
    monkeypatch.setenv("SERA_VISION_WEIGHTS", str(tmp_path / "dino"))
    cfg = match_weights(tiny_run_cfg(EXPECTED_VISION))
    assert cfg.vision.arch == "dinov2" and build_dinov2(cfg.vision, 32).config.hidden_size == 32
    with pytest.raises(SeraError, match=r"\$SERA_VISION_WEIGHTS .*the run expects arch "
                                        "dinov2-reg"):
        build_dinov2(EXPECTED_VISION, 32)
