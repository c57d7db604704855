"""SERA-Adapter spatial expert: smooths responses within a neighbourhood so that tokens of one
object agree (fights fragmented masks). (B, C, H, W) -> (B, C, H, W)."""

from __future__ import annotations

import torch
from torch import nn


class SpatialAdapterExpert(nn.Module):
    def __init__(self, channels: int, alpha: float = 0.3) -> None:
        super().__init__()
        self.alpha = alpha
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
            nn.Conv2d(channels, channels, 1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.body(x)
