"""Pretrained-weight loading, exercised with tiny models of the real classes saved to disk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sera_cli.config import ModelConfig, TextConfig, VisionConfig
from sera_cli.errors import SeraError
from sera_cli.model.backbones import build_clip_text, build_dinov2

TINY_VISION = VisionConfig(hub_id=None, hidden_size=32, layers=2, heads=2, patch_size=8)
TINY_TEXT = TextConfig(pretrained=None, width=32, layers=2, heads=2, output_dim=16,
                       quick_gelu=True)


def test_dinov2_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    source = build_dinov2(TINY_VISION, image_size=32).eval()
    source.save_pretrained(tmp_path / "dino")
    pretrained = VisionConfig(**{**TINY_VISION.__dict__, "hub_id": "facebook/not-downloaded"})
    loaded = build_dinov2(pretrained, 32, weights=str(tmp_path / "dino")).eval()
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels).last_hidden_state,
                                   source(pixels).last_hidden_state)


def test_dinov2_weights_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_dinov2(TINY_VISION, image_size=32).save_pretrained(tmp_path / "dino")
    monkeypatch.setenv("SERA_VISION_WEIGHTS", str(tmp_path / "dino"))
    pretrained = VisionConfig(**{**TINY_VISION.__dict__, "hub_id": "facebook/not-downloaded"})
    assert build_dinov2(pretrained, 32).config.hidden_size == 32


def test_clip_text_loads_a_full_clip_state_dict(tmp_path: Path) -> None:
    source = build_clip_text(TINY_TEXT).eval()
    state = {k: v.clone() for k, v in source.tower.state_dict().items()}
    # A full CLIP checkpoint: longer positions and a vision tower, both handled on load.
    state["positional_embedding"] = torch.cat([state["positional_embedding"],
                                               torch.randn(60, 32)])
    state["visual.proj"] = torch.randn(4, 4)
    save_file(state, tmp_path / "clip.safetensors")
    loaded = build_clip_text(TextConfig(**{**TINY_TEXT.__dict__, "pretrained": "openai"}),
                             weights=str(tmp_path / "clip.safetensors")).eval()
    ids = torch.tensor([[49406, 320, 1929, 49407] + [0] * 13])
    with torch.no_grad():
        for a, b in zip(loaded(ids), source(ids), strict=True):
            torch.testing.assert_close(a, b)


def test_clip_text_wrong_checkpoint_names_the_tensor(tmp_path: Path) -> None:
    state = dict(build_clip_text(TINY_TEXT).tower.state_dict())
    state["ln_final.weight"] = torch.ones(7)
    save_file(state, tmp_path / "bad.safetensors")
    cfg = TextConfig(**{**TINY_TEXT.__dict__, "pretrained": "openai"})
    with pytest.raises(SeraError, match=r"ln_final.weight has shape \(7,\).*\(32,\)"):
        build_clip_text(cfg, weights=str(tmp_path / "bad.safetensors"))


def test_offline_fails_at_once_saying_how_to_provide_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("SERA_VISION_WEIGHTS", raising=False)
    monkeypatch.delenv("SERA_TEXT_WEIGHTS", raising=False)
    cfg = ModelConfig()  # sera-b: hub ids
    start = time.monotonic()
    with pytest.raises(SeraError, match="DINOv2 weights 'facebook/dinov2-with-registers-base'"
                                        ".*--vision-weights PATH.*SERA_VISION_WEIGHTS"):
        build_dinov2(cfg.vision, cfg.image_size)
    with pytest.raises(SeraError, match="CLIP text weights 'ViT-B-16/openai'.*--text-weights"):
        build_clip_text(cfg.text)
    assert time.monotonic() - start < 10


def test_missing_weights_path_is_named(tmp_path: Path) -> None:
    cfg = VisionConfig()
    with pytest.raises(SeraError, match=f"--vision-weights points at {tmp_path / 'nope'}"):
        build_dinov2(cfg, 448, weights=str(tmp_path / "nope"))
