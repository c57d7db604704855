"""The SERA model assembled from its parts, and the one function that builds it from a config.

Data flow (shapes for sera-b): expression ids (B, 17) -> CLIP text with adapters -> words
(B, 17, 512), sentence (B, 512); image (B, 3, 448, 448) -> DINOv2 with SERA-Adapters -> three
(B, 768, 32, 32) maps -> neck -> (B, 512, 32, 32) -> SERA-Fusion (routed experts) -> decoder ->
projector -> mask logits (B, 1, 128, 128); with `no_target_head`, the decoded map also gives one
"names nothing" logit per expression (B,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sera_cli.config import ModelConfig
from sera_cli.model.adapter import SeraAdapter, TextAdapter
from sera_cli.model.backbones import ClipText, build_clip_text, build_dinov2
from sera_cli.model.decoder import Decoder
from sera_cli.model.fusion import build_fusion, build_routed
from sera_cli.model.neck import Neck
from sera_cli.model.no_target import NoTargetHead
from sera_cli.model.peft import apply_tuning
from sera_cli.model.projector import Projector
from sera_cli.model.routing import RoutedExperts, Routing
from sera_cli.model.vision import AdaptedDinov2
from sera_cli.registry import Registry, default_registry


@dataclass
class SeraOutput:
    logits: torch.Tensor  # (B, 1, h, w) mask logits at the projector's resolution
    routings: dict[str, Routing]  # "adapter.<block>" and "fusion"
    no_target: torch.Tensor | None = None  # (B,) logits of "names nothing"; None without the head


class SeraModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vision: AdaptedDinov2, text: ClipText,
                 fusion: RoutedExperts) -> None:
        super().__init__()
        d, t = cfg.fusion_dim, cfg.text
        self.cfg = cfg
        self.text = text
        self.text_adapters = nn.ModuleDict({
            str(i): TextAdapter(t.width, cfg.text_adapter_dim, cfg.text_adapter_scale)
            for i in range(2, t.layers + 1, 2)  # every other CLIP text layer
        })
        self.vision = vision
        self.word_proj = nn.Linear(t.width, d)
        self.sentence_proj = nn.Linear(t.output_dim, d)
        self.neck = Neck(cfg.vision.hidden_size, d, cfg.decoder_heads,
                         num_maps=len(cfg.neck_blocks) + 1)
        self.fusion = fusion
        self.decoder = Decoder(d, cfg.decoder_heads, cfg.decoder_ffn, cfg.decoder_layers)
        self.projector = Projector(d, d, cfg.projector_dim)
        # Absent, not merely unused, when off: the state dict of a run without it is unchanged.
        self.no_target_head = NoTargetHead(d) if cfg.no_target_head else None

    def routed(self) -> dict[str, RoutedExperts]:
        found = {f"adapter.{k}": a.experts for k, a in self.vision.adapters.items()}
        found["fusion"] = self.fusion
        return {k: v for k, v in found.items() if len(v.experts)}

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> SeraOutput:
        words, sentence, pad = self.text(ids, self.text_adapters)  # (B, L, Wt), (B, Dt), (B, L)
        maps = self.vision(pixels, words, pad, sentence)  # [(B, Wv, H, W)] * 3
        words_d = self.word_proj(words)  # (B, L, D)
        sentence_d = self.sentence_proj(sentence)  # (B, D)
        x = self.neck(maps, words_d, pad, sentence_d)  # (B, D, H, W)
        x = self.fusion(x, sentence_d)
        x = self.decoder(x, words_d, pad)
        logits = self.projector(x, sentence_d)  # (B, 1, 4H, 4W)
        no_target = None if self.no_target_head is None else self.no_target_head(x, sentence_d)
        routings = {k: m.last_routing for k, m in self.routed().items()
                    if m.last_routing is not None}
        return SeraOutput(logits, routings, no_target)


def resolve_plugins(cfg: ModelConfig, registry: Registry) -> tuple[list, list, Any, Any]:
    """The expert and router specs the config uses (``cfg.used_plugins()``), then the config's
    own checks: cheap, so callers run it before slow work (loading a data set) to fail on a typo
    at once."""
    specs = {use: registry.spec(use) for use in cfg.used_plugins()}
    adapter_specs = [s for u, s in specs.items() if u.kind == "expert" and u.stage == "adapter"]
    fusion_specs = [s for u, s in specs.items() if u.kind == "expert" and u.stage == "fusion"]
    routers = {u.stage: s for u, s in specs.items() if u.kind == "router"}
    cfg.validate()  # after the names: an unknown expert is the more useful error
    return adapter_specs, fusion_specs, routers.get("adapter"), routers.get("fusion")


def build_model(cfg: ModelConfig, registry: Registry | None = None,
                vision_weights: str | None = None, text_weights: str | None = None,
                model_cls: type[SeraModel] | None = None,
                plain_backbones: bool = False) -> SeraModel:
    """Build SERA from a config, resolving every expert and router by name in the registry.
    ``model_cls`` is a SeraModel subclass to build instead (the hub-aware one of
    ``sera_cli.runs.pretrained``, which this layer cannot import). ``plain_backbones``: a
    backbone that takes no pretrained weights is built from ``towers`` (uninitialized, for a
    caller that loads a whole state dict next) rather than from transformers or open_clip."""
    registry = registry or default_registry()
    adapter_specs, fusion_specs, adapter_router, fusion_router = resolve_plugins(cfg, registry)
    text = build_clip_text(cfg.text, text_weights, plain=plain_backbones)
    dinov2 = build_dinov2(cfg.vision, cfg.image_size, vision_weights, plain=plain_backbones)
    routed_on = cfg.sentence_routing
    adapters = {
        block: SeraAdapter(cfg.vision.hidden_size, cfg.adapter_dim, cfg.text.width,
                           build_routed(adapter_specs, adapter_router, cfg.adapter_dim,
                                        len(adapter_specs),
                                        cfg.text.output_dim if routed_on else None))
        for block in cfg.adapter_blocks
    }
    vision = AdaptedDinov2(dinov2, adapters, cfg.adapter_scale, cfg.neck_blocks)
    fusion = build_fusion(cfg.fusion_dim, fusion_specs, fusion_router, cfg.topk,
                          cfg.fusion_dim if routed_on else None)
    model = (model_cls or SeraModel)(cfg, vision, text, fusion)
    apply_tuning(model, cfg.tune)
    return model
