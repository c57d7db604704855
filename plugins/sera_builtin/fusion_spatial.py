"""SERA-Fusion spatial expert: expressions such as "left man" or "top one" name absolute
positions, which convolutional features do not encode; a normalized (x, y) grid in [-1, 1] is
appended and projected back. (B, C, H, W) -> (B, C, H, W)."""

from __future__ import annotations

import torch
from torch import nn

from sera_cli.model.layers import coordinate_grid

from ._ops import zero_init


class SpatialExpert(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.project = zero_init(nn.Conv2d(channels + 2, channels, 1))
        self._grid: torch.Tensor | None = None

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """The coordinate grid for x's size, built once per size, device and dtype."""
        h, w = x.shape[-2:]
        g = self._grid
        if g is None or g.shape[-2:] != (h, w) or g.device != x.device or g.dtype != x.dtype:
            g = self._grid = coordinate_grid(h, w, x.device, x.dtype)
        return g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid(x).expand(x.shape[0], -1, -1, -1)
        return x + self.project(torch.cat([x, grid], dim=1))  # (B, C+2, H, W) -> (B, C, H, W)
