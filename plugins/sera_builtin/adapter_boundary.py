"""SERA-Adapter boundary expert: a light depthwise-separable filter that sharpens responses at
object borders, added with a small scale (beta) so it refines rather than replaces the backbone's
features. (B, C, H, W) -> (B, C, H, W)."""

from __future__ import annotations

import torch
from torch import nn


class BoundaryAdapterExpert(nn.Module):
    def __init__(self, channels: int, beta: float = 0.1) -> None:
        super().__init__()
        self.beta = beta
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.beta * self.pointwise(self.depthwise(x))
