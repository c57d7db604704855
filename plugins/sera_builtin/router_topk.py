"""Noisy top-k router (SERA-Fusion): a two-layer MLP scores the experts from the pooled map;
in training, learned Gaussian noise explores other experts; only the k best are kept and
renormalized, so experts specialize. (B, C, H, W) -> Routing with exactly k non-zero gates."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sera_cli.model.routing import Routing


class NoisyTopKRouter(nn.Module):
    def __init__(self, channels: int, num_experts: int, top_k: int) -> None:
        super().__init__()
        hidden = max(channels // 4, 16)
        self.top_k = top_k
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_experts)
        )
        self.noise = nn.Linear(channels, num_experts)

    def forward(self, x: torch.Tensor) -> Routing:
        pooled = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        logits = self.mlp(pooled)  # (B, E)
        scores = logits
        if self.training:
            scores = logits + torch.randn_like(logits) * F.softplus(self.noise(pooled))
        top_values, top_index = scores.topk(self.top_k, dim=-1)  # (B, k)
        # gates in float32 whatever the model's precision: they sum to 1 (bf16 would round them)
        gates = torch.zeros_like(scores, dtype=torch.float32).scatter(
            -1, top_index, torch.softmax(top_values.float(), -1))
        return Routing(gates=gates, logits=logits)
