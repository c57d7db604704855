"""SERA-Fusion boundary expert: masks leak across weak edges; fixed Sobel kernels give the
gradient magnitude of every channel, and a 1x1 conv turns it into a refinement.
(B, C, H, W) -> (B, C, H, W)."""

from __future__ import annotations

import torch
from torch import nn

from ._ops import SOBEL, FixedDepthwise, zero_init


class BoundaryExpert(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.sobel = FixedDepthwise(SOBEL)
        self.fuse = zero_init(nn.Conv2d(channels, channels, 1))

    def gradient_magnitude(self, x: torch.Tensor) -> torch.Tensor:
        gx, gy = self.sobel(x)  # (B, C, H, W) each: horizontal and vertical gradients
        return torch.sqrt(gx * gx + gy * gy + 1e-6) - 1e-3  # exactly 0 on a flat map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fuse(self.gradient_magnitude(x))
