"""Noisy top-k router per position: the SERA-Fusion router's two-layer MLP and learned noise as
1x1 convolutions, so every position of the map picks its own k experts (a boundary expert where
the edges are, a context expert elsewhere) instead of the whole sample sharing one choice.
(B, C, H, W) -> Routing with k non-zero position gates at every position."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from sera_cli.model.routing import Routing

from .router_topk import NoisyTopKRouter, noisy_top_k


class NoisyTopKTokenRouter(NoisyTopKRouter):
    def __init__(self, channels: int, num_experts: int, top_k: int) -> None:
        super().__init__(channels, num_experts, top_k, layer=partial(nn.Conv2d, kernel_size=1))

    def forward(self, x: torch.Tensor) -> Routing:
        logits = self.mlp(x)  # (B, C, H, W) -> (B, E, H, W)
        noise_std = F.softplus(self.noise(x)) if self.training else None
        position = noisy_top_k(logits, noise_std, self.top_k, dim=1)  # (B, E, H, W)
        return Routing(gates=position.mean(dim=(2, 3)), logits=logits, position_gates=position)
