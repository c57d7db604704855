"""Tiny models of the real backbone classes (transformers' DINOv2 with and without registers,
open_clip's CLIP with GELU and QuickGELU), saved as the hub stores them, and the backbone
sections a sera-b run expects at the same tiny sizes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from sera_cli.config import TextConfig, VisionConfig

TINY = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
        "intermediate_size": 128, "patch_size": 8, "image_size": 32}
#: sera-b's backbone sections at the tiny sizes above: what a run expects before it has seen
#: any weights (registers, QuickGELU: the paper's).
EXPECTED_VISION = VisionConfig(hidden_size=32, layers=4, heads=2, patch_size=8)
EXPECTED_TEXT = TextConfig(width=32, layers=2, heads=2, output_dim=16)


def dinov2(kind: str) -> torch.nn.Module:
    """A tiny model of the real transformers class: "plain" Dinov2Model, "registers"
    Dinov2WithRegistersModel (4 registers)."""
    from transformers import (
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
    )

    torch.manual_seed(0)
    if kind == "plain":
        return Dinov2Model(Dinov2Config(**TINY)).eval()
    return Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**TINY, num_register_tokens=4)
                                    ).eval()


def clip_model_cfg(quick_gelu: bool) -> dict[str, Any]:
    """open_clip's own ViT-B-16 config (ViT-B-16-quickgelu's, with QuickGELU) at a tiny size."""
    import open_clip

    cfg = copy.deepcopy(open_clip.get_model_config("ViT-B-16-quickgelu" if quick_gelu
                                                   else "ViT-B-16"))
    cfg["embed_dim"] = 16
    cfg["vision_cfg"].update(image_size=32, layers=1, width=64, patch_size=16)
    cfg["text_cfg"].update(width=32, heads=2, layers=2)
    return cfg


def save_clip(folder: Path, model_cfg: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """A CLIP of open_clip's class, written as open_clip puts it on the hub: the full state dict
    as open_clip_model.safetensors beside open_clip_config.json."""
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    clip = CLIP(**model_cfg).eval()
    folder.mkdir(parents=True)
    save_file(clip.state_dict(), folder / "open_clip_model.safetensors")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg,
                                                              "preprocess_cfg": {}}))
    return clip
