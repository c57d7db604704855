"""SERA-Fusion context expert: relational expressions ("the square left of the blue circle")
need evidence from far away; multi-head self-attention lets every position see all others.
Costs O((H*W)^2), the most expensive built-in expert. (B, C, H, W) -> (B, C, H, W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Channels per attention head. Narrower heads cost as many FLOPs but run several times slower
#: on the CPU (fused attention with 8-wide heads: 4.5x the time of 64-wide ones at 256 tokens).
HEAD_DIM = 64


class ContextExpert(nn.Module):
    def __init__(self, channels: int, max_heads: int = 8) -> None:
        super().__init__()
        heads = max(1, min(max_heads, channels // HEAD_DIM))  # 8 heads at the paper's 512
        while channels % heads:
            heads -= 1
        self.norm = nn.LayerNorm(channels)
        # Holds the projections (and names their checkpoint keys); forward calls the fused
        # attention kernel itself, see there.
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nn.MultiheadAttention's inference fast path (`_native_multi_head_attention`) runs
        # attention as bmm + softmax on the CPU, 1.6x slower here than the fused SDPA kernel,
        # and FlopCounterMode cannot see it; the same projections around SDPA give the same
        # result (MultiheadAttention's dropout is 0).
        b, c, h, w = x.shape
        attn = self.attn
        heads = attn.num_heads
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (B, C, H, W) -> (B, H*W, C)
        qkv = F.linear(tokens, attn.in_proj_weight, attn.in_proj_bias)  # (B, H*W, 3C)
        # -> 3 x (B, heads, H*W, C/heads)
        q, k, v = qkv.view(b, h * w, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H*W, C/heads)
        mixed = attn.out_proj(mixed.transpose(1, 2).reshape(b, h * w, c))  # (B, H*W, C)
        return x + mixed.transpose(1, 2).reshape(b, c, h, w)
