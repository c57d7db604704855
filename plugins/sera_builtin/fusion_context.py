"""SERA-Fusion context expert: relational expressions ("the square left of the blue circle")
need evidence from far away; multi-head self-attention lets every position see all others.
Costs O((H*W)^2), the most expensive built-in expert. (B, C, H, W) -> (B, C, H, W)."""

from __future__ import annotations

import torch
from torch import nn


class ContextExpert(nn.Module):
    def __init__(self, channels: int, heads: int = 8) -> None:
        super().__init__()
        while channels % heads:
            heads //= 2
        self.norm = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (B, C, H, W) -> (B, H*W, C)
        mixed, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return x + mixed.transpose(1, 2).reshape(b, c, h, w)
