"""The neck: three DINOv2 maps, each conditioned on the expression, merged into one map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sera_cli.model.layers import coordinate_grid


class TextConditionedMap(nn.Module):
    """(B, W, H, W') visual map -> (B, D, H, W'): projected, cross-attends to the words, then
    gated by the sentence feature so channels irrelevant to the expression are damped."""

    def __init__(self, in_dim: int, dim: int, heads: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(in_dim, dim, 1), nn.BatchNorm2d(dim), nn.GELU())
        self.norm = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.gate = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, words: torch.Tensor, pad_mask: torch.Tensor,
                sentence: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        b, d, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, D, H, W) -> (B, HW, D)
        attended, _ = self.cross(self.norm(tokens), words, words, key_padding_mask=pad_mask,
                                 need_weights=False)
        tokens = tokens + attended
        tokens = tokens * torch.sigmoid(self.gate(sentence)).unsqueeze(1)
        return tokens.transpose(1, 2).reshape(b, d, h, w)


class Neck(nn.Module):
    """Concatenate the conditioned maps, project, and add coordinates (CoordConv)."""

    def __init__(self, in_dim: int, dim: int, heads: int, num_maps: int = 3) -> None:
        super().__init__()
        self.maps = nn.ModuleList(TextConditionedMap(in_dim, dim, heads) for _ in range(num_maps))
        self.merge = nn.Sequential(nn.Conv2d(num_maps * dim, dim, 1), nn.BatchNorm2d(dim),
                                   nn.GELU())
        self.coord = nn.Sequential(nn.Conv2d(dim + 2, dim, 3, padding=1), nn.BatchNorm2d(dim),
                                   nn.GELU())

    def forward(self, maps: list[torch.Tensor], words: torch.Tensor, pad_mask: torch.Tensor,
                sentence: torch.Tensor) -> torch.Tensor:
        fused = [m(x, words, pad_mask, sentence) for m, x in zip(self.maps, maps, strict=True)]
        x = self.merge(torch.cat(fused, dim=1))  # (B, 3D, H, W) -> (B, D, H, W)
        grid = coordinate_grid(*x.shape[-2:], x.device, x.dtype).expand(x.shape[0], -1, -1, -1)
        return self.coord(torch.cat([x, grid], dim=1))


def sine_positions(h: int, w: int, dim: int, device: torch.device,
                   dtype: torch.dtype) -> torch.Tensor:
    """2-D sine position code (H*W, dim), as in DETR: half the channels for y, half for x."""
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None] * freq  # (H, dim/4)
    xs = torch.arange(w, device=device, dtype=torch.float32)[:, None] * freq
    y = torch.cat([ys.sin(), ys.cos()], -1)[:, None, :].expand(h, w, -1)
    x = torch.cat([xs.sin(), xs.cos()], -1)[None, :, :].expand(h, w, -1)
    pos = torch.cat([y, x], -1).reshape(h * w, -1)
    return F.pad(pos, (0, dim - pos.shape[-1])).to(dtype)
