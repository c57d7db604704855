"""The SERA model assembled from its parts, and the one function that builds it from a config.

Data flow (shapes for sera-b): expression ids (B, 17) -> CLIP text with adapters -> words
(B, 17, 512), sentence (B, 512); image (B, 3, 448, 448) -> DINOv2 with SERA-Adapters -> three
(B, 768, 32, 32) maps -> neck -> (B, 512, 32, 32) -> SERA-Fusion (routed experts) -> decoder ->
projector -> mask logits (B, 1, 128, 128).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sera_cli.config import ModelConfig
from sera_cli.model.adapter import SeraAdapter, TextAdapter
from sera_cli.model.backbones import ClipText, build_clip_text, build_dinov2
from sera_cli.model.decoder import Decoder, Projector
from sera_cli.model.neck import Neck
from sera_cli.model.peft import apply_tuning
from sera_cli.model.routing import RoutedExperts, Routing
from sera_cli.model.vision import AdaptedDinov2
from sera_cli.registry import Registry, default_registry


@dataclass
class SeraOutput:
    logits: torch.Tensor  # (B, 1, h, w) mask logits at the projector's resolution
    routings: dict[str, Routing]  # "adapter.<block>" and "fusion"


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

    def routed(self) -> dict[str, RoutedExperts]:
        found = {f"adapter.{k}": a.experts for k, a in self.vision.adapters.items()}
        found["fusion"] = self.fusion
        return {k: v for k, v in found.items() if len(v.experts)}

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> SeraOutput:
        words, sentence, pad = self.text(ids, self.text_adapters)  # (B, L, Wt), (B, Dt), (B, L)
        maps = self.vision(pixels, words, pad)  # [(B, Wv, H, W)] * 3
        words_d = self.word_proj(words)  # (B, L, D)
        sentence_d = self.sentence_proj(sentence)  # (B, D)
        x = self.neck(maps, words_d, pad, sentence_d)  # (B, D, H, W)
        x = self.fusion(x)
        x = self.decoder(x, words_d, pad)
        logits = self.projector(x, sentence_d)  # (B, 1, 4H, 4W)
        routings = {k: m.last_routing for k, m in self.routed().items()
                    if m.last_routing is not None}
        return SeraOutput(logits, routings)


def resolve_plugins(cfg: ModelConfig, registry: Registry) -> tuple[list, list, Any, Any]:
    """The expert and router specs the config names, then the config's own checks: cheap, so
    callers run it before slow work (loading a data set) to fail on a typo at once."""
    adapter_specs = [registry.expert("adapter", n) for n in cfg.adapter_experts]
    fusion_specs = [registry.expert("fusion", n) for n in cfg.fusion_experts]
    adapter_router = registry.router(cfg.adapter_router) if adapter_specs else None
    fusion_router = registry.router(cfg.fusion_router) if fusion_specs else None
    cfg.validate()  # after the names: an unknown expert is the more useful error
    return adapter_specs, fusion_specs, adapter_router, fusion_router


def build_model(cfg: ModelConfig, registry: Registry | None = None,
                vision_weights: str | None = None, text_weights: str | None = None) -> SeraModel:
    """Build SERA from a config, resolving every expert and router by name in the registry."""
    registry = registry or default_registry()
    adapter_specs, fusion_specs, adapter_router, fusion_router = resolve_plugins(cfg, registry)

    def routed(specs: list, router_spec, dim: int, top_k: int) -> RoutedExperts:  # type: ignore[no-untyped-def]
        experts = [s.build(dim) for s in specs]
        router = router_spec.build(dim, len(experts), top_k) if router_spec else nn.Identity()
        labels = (f"router '{router_spec.name}' (plugin {router_spec.plugin})" if router_spec
                  else "router",
                  [f"{s.stage} expert '{s.name}' (plugin {s.plugin})" for s in specs])
        return RoutedExperts(experts, router, labels)

    text = build_clip_text(cfg.text, text_weights)
    dinov2 = build_dinov2(cfg.vision, cfg.image_size, vision_weights)
    adapters = {
        block: SeraAdapter(cfg.vision.hidden_size, cfg.adapter_dim, cfg.text.width,
                           routed(adapter_specs, adapter_router, cfg.adapter_dim,
                                  len(adapter_specs)))
        for block in cfg.adapter_blocks
    }
    vision = AdaptedDinov2(dinov2, adapters, cfg.adapter_scale, cfg.neck_blocks)
    fusion = routed(fusion_specs, fusion_router, cfg.fusion_dim, cfg.top_k)
    model = SeraModel(cfg, vision, text, fusion)
    apply_tuning(model, cfg.tune)
    return model
