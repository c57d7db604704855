"""SERA-Fusion shape expert: an object's extent is low-frequency (blur) and its outline
high-frequency (Laplacian); both fixed filters are combined by a learned 1x1 conv.
(B, C, H, W) -> (B, C, H, W)."""

from __future__ import annotations

import torch
from torch import nn

from ._ops import GAUSSIAN, LAPLACIAN, FixedDepthwise, zero_init


class ShapeExpert(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.filters = FixedDepthwise(torch.stack([GAUSSIAN, LAPLACIAN]))
        self.fuse = zero_init(nn.Conv2d(2 * channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) blurred and Laplacian -> (B, C, 2, H, W) -> (B, 2C, H, W), channel 2c+k
        f = torch.stack(self.filters(x), dim=2).flatten(1, 2)
        return x + self.fuse(f)
