"""Fixed operators shared by the built-in experts: built once, stored as buffers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FixedDepthwise(nn.Module):
    """Applies K fixed 3x3 kernels to every channel: (B, C, H, W) -> (B, C, K, H, W).

    Replicate padding, so a constant map gives exactly zero for zero-sum kernels at the border too.
    """

    def __init__(self, kernels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("kernels", kernels.reshape(-1, 1, 3, 3).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k = self.kernels.shape[0]
        weight = self.kernels.to(x.dtype).repeat(c, 1, 1, 1)  # (C*K, 1, 3, 3)
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=c)
        return y.view(b, c, k, h, w)


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """An expert's last projection starts at zero, so an untrained expert returns its input."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


SOBEL = torch.tensor([[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                      [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]])
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
GAUSSIAN = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
