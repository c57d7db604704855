"""The decoder: a transformer over the fused map's positions that attends to the words."""

from __future__ import annotations

import torch
from torch import nn

from sera_cli.model.neck import sine_positions


class DecoderLayer(nn.Module):
    """Pre-norm: self-attention over positions, cross-attention to words, feed-forward."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, words: torch.Tensor,
                pad_mask: torch.Tensor) -> torch.Tensor:
        q = self.norms[0](x) + pos
        x = x + self.self_attn(q, q, self.norms[0](x), need_weights=False)[0]
        x = x + self.cross_attn(self.norms[1](x) + pos, words, words, key_padding_mask=pad_mask,
                                need_weights=False)[0]
        return x + self.ffn(self.norms[2](x))


class Decoder(nn.Module):
    """(B, D, H, W) map and (B, L, D) words -> (B, D, H, W)."""

    def __init__(self, dim: int, heads: int, ffn: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, words: torch.Tensor,
                pad_mask: torch.Tensor) -> torch.Tensor:
        b, d, h, w = x.shape
        pos = sine_positions(h, w, d, x.device, x.dtype)
        tokens = x.flatten(2).transpose(1, 2)  # (B, D, H, W) -> (B, HW, D)
        for layer in self.layers:
            tokens = layer(tokens, pos, words, pad_mask)
        return self.norm(tokens).transpose(1, 2).reshape(b, d, h, w)
