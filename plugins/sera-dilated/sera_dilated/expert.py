"""The dilated expert: mid-range context for expressions such as "the square next to the star".

Between the built-in experts' local filters (Sobel, Laplacian: 3x3) and the context expert's
global self-attention (O((H*W)^2)), three depthwise 3x3 convolutions at dilations 1, 2 and 4 see
a 9x9 neighbourhood for O(H*W) cost. (B, C, H, W) -> (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DilatedExpert(nn.Module):
    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=d, dilation=d, groups=channels)
            for d in dilations
        )
        self.fuse = nn.Conv2d(len(dilations) * channels, channels, 1)
        # Zero-initialized: an untrained expert returns its input, so adding it to a model
        # changes nothing until training gives it a reason to.
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = torch.cat([F.gelu(b(x)) for b in self.branches], dim=1)  # (B, 3C, H, W)
        return x + self.fuse(views)  # input plus a residual refinement, (B, C, H, W)
