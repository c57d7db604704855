"""Soft router (SERA-Adapter): every expert contributes, weighted by a softmax over a linear map
of the pooled features; dense gates keep backbone adaptation stable. (B, C, H, W) -> Routing."""

from __future__ import annotations

import torch
from torch import nn

from sera_cli.model.routing import Routing


class SoftRouter(nn.Module):
    def __init__(self, channels: int, num_experts: int, top_k: int | None = None) -> None:
        super().__init__()
        self.gate = nn.Linear(channels, num_experts)

    def forward(self, x: torch.Tensor) -> Routing:
        logits = self.gate(x.mean(dim=(2, 3)))  # (B, C, H, W) -> (B, C) -> (B, E)
        # gates in float32 whatever the model's precision: they sum to 1 (bf16 would round them)
        return Routing(gates=torch.softmax(logits.float(), dim=-1), logits=logits)
