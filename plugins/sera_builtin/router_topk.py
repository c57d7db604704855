"""Noisy top-k router (SERA-Fusion): a two-layer MLP scores the experts from the pooled map;
in training, learned Gaussian noise explores other experts; only the k best are kept and
renormalized, so experts specialize. (B, C, H, W) -> Routing with exactly k non-zero gates."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sera_cli.model.routing import Routing


def noisy_top_k(logits: torch.Tensor, noise_std: torch.Tensor | None, k: int,
                dim: int) -> torch.Tensor:
    """Gates from raw scores along ``dim``: the k best (after Gaussian noise of ``noise_std``,
    where given) softmaxed, the rest zero. In float32 whatever the model's precision: they sum
    to 1 (bf16 would round them)."""
    scores = logits if noise_std is None else logits + torch.randn_like(logits) * noise_std
    top_values, top_index = scores.topk(k, dim=dim)
    return torch.zeros_like(scores, dtype=torch.float32).scatter(
        dim, top_index, torch.softmax(top_values.float(), dim))


class NoisyTopKRouter(nn.Module):
    """``layer(in, out)`` builds the MLP's and the noise's layers: Linear on the pooled map here,
    a 1x1 convolution in the per-position router, so that both score the experts with the same
    MLP and noise and differ only in what they score (the sample, or each position)."""

    def __init__(self, channels: int, num_experts: int, top_k: int,
                 layer: Callable[[int, int], nn.Module] = nn.Linear) -> None:
        super().__init__()
        hidden = max(channels // 4, 16)
        self.top_k = top_k
        self.mlp = nn.Sequential(
            layer(channels, hidden), nn.ReLU(inplace=True), layer(hidden, num_experts)
        )
        self.noise = layer(channels, num_experts)

    def forward(self, x: torch.Tensor) -> Routing:
        pooled = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        logits = self.mlp(pooled)  # (B, E)
        noise_std = F.softplus(self.noise(pooled)) if self.training else None
        return Routing(gates=noisy_top_k(logits, noise_std, self.top_k, dim=-1), logits=logits)
