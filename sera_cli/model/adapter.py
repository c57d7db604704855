"""SERA-Adapter: expression-aware refinement inside the frozen DINOv2 blocks.

In each chosen block the feed-forward residual path becomes x + MLP(LN(x)) + s * adapter(x),
where x is the block's post-attention state. The adapter's up-projection starts at zero, so an
untrained adapter leaves the backbone's outputs exactly as they were.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sera_cli.model.routing import RoutedExperts


class MultiScaleConv(nn.Module):
    """Parallel 1x1, 3x3 and 5x5 (depthwise) views of the grid, fused by a 1x1 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Conv2d(dim, dim, 1)]
            + [nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (3, 5)]
        )
        self.fuse = nn.Conv2d(3 * dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.fuse(torch.cat([b(x) for b in self.branches], dim=1)))


class SeraAdapter(nn.Module):
    """Patch tokens -> down -> grid -> multi-scale -> routed experts -> cross-attention to words
    -> up. (B, N, W) patch tokens of an HxW grid -> (B, N, W) residual update."""

    def __init__(self, width: int, dim: int, word_dim: int, experts: RoutedExperts,
                 heads: int = 4) -> None:
        super().__init__()
        self.down = nn.Linear(width, dim)
        self.multiscale = MultiScaleConv(dim)
        self.experts = experts
        self.norm = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, kdim=word_dim, vdim=word_dim,
                                           batch_first=True)
        self.up = nn.Linear(dim, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int], words: torch.Tensor,
                pad_mask: torch.Tensor, sentence: torch.Tensor | None = None) -> torch.Tensor:
        """``sentence`` (B, Dt): read only by a router that routes on the expression."""
        b, n, _ = tokens.shape
        h, w = grid
        x = F.gelu(self.down(tokens))  # (B, N, W) -> (B, N, d)
        x = x.transpose(1, 2).reshape(b, -1, h, w)  # -> (B, d, H, W)
        x = self.experts(self.multiscale(x), sentence)
        x = x.flatten(2).transpose(1, 2)  # (B, d, H, W) -> (B, N, d)
        attended, _ = self.cross(self.norm(x), words, words, key_padding_mask=pad_mask,
                                 need_weights=False)
        return self.up(x + attended)  # (B, N, d) -> (B, N, W)


class TextAdapter(nn.Module):
    """DETRIS's 1-D convolutional text adapter: mixes neighbouring words, added with a scale.
    (B, L, W) -> (B, L, W); zero-initialized output, so it starts as the identity."""

    def __init__(self, width: int, dim: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.down = nn.Linear(width, dim)
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.up = nn.Linear(dim, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.down(x)).transpose(1, 2)  # (B, L, d) -> (B, d, L)
        h = F.gelu(self.conv(h)).transpose(1, 2)
        return x + self.scale * self.up(h)
