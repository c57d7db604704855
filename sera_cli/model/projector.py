"""The text-to-pixel projector: the decoded map upsampled, and the sentence turned into a dynamic
3x3 kernel that produces the mask logits (CRIS, DETRIS)."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from sera_cli.model.layers import coordinate_grid


def _up(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(in_dim, out_dim, 3, padding=1), nn.BatchNorm2d(out_dim),
                         nn.GELU())


class Projector(nn.Module):
    """Two x2 upsamplings (to ``width`` channels, then half of it), then a per-sample 3x3 kernel
    predicted from the sentence feature: (B, D, H, W), (B, S) -> (B, 1, 4H, 4W) logits.

    The kernel also reads two coordinate channels (CoordConv), so a sentence such as "the left
    one" can weight position directly and its position words get a gradient from the first
    steps. Without them a sera-tiny trained from scratch learned "left", "right", "top" and
    "bottom" as one word (sentence features at cosine 0.99) and covered every object the rest of
    the sentence fits (docs/performance.md).
    """

    #: Where set, the dtype the projector autocasts to whatever its caller's precision: training
    #: on a CPU runs the rest of the model in float32 and this in bf16 (``resolve_precision``).
    autocast_dtype: torch.dtype | None = None

    def __init__(self, dim: int, sentence_dim: int, width: int | None = None) -> None:
        super().__init__()
        width = width or dim
        self.channels = width // 2
        self.visual = nn.Sequential(_up(dim, width), _up(width, self.channels),
                                    nn.Conv2d(self.channels, self.channels, 1))
        self.kernel = nn.Linear(sentence_dim, (self.channels + 2) * 9 + 1)

    def forward(self, x: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        region = nullcontext() if self.autocast_dtype is None else \
            torch.autocast(x.device.type, dtype=self.autocast_dtype)
        with region:
            # channels-last: on the CPU, oneDNN runs these full-resolution convolutions,
            # backward included, faster than in NCHW (a sera-tiny training step: 804 -> 750 ms).
            x = self.visual(x.contiguous(memory_format=torch.channels_last))  # (B, C, 4H, 4W)
            b, _, h, w = x.shape
            grid = coordinate_grid(h, w, x.device, x.dtype).expand(b, -1, -1, -1)
            x = torch.cat([x, grid], dim=1)  # (B, C + 2, 4H, 4W)
            params = self.kernel(sentence)  # (B, (C + 2) * 9 + 1)
            return sample_conv3x3(x, params[:, :-1], params[:, -1])


def sample_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Sample i of ``x`` (B, C, H, W) cross-correlated with its own 3x3 kernel, ``weight[i]``
    ((B, C * 9), channel-major as a conv weight), zero-padded: (B, 1, H, W).

    Each tap is first applied to every position as one batched matrix product (B, 9, C) @
    (B, C, HW), then the nine tap maps are shifted into place and summed. A grouped convolution
    with one group per sample computes the same, but its backward pass on the CPU took 5x as
    long (70 ms against 13 ms at sera-tiny's batch 16, 34 channels, 64 x 64).
    """
    b, c, h, w = x.shape
    taps = torch.bmm(weight.reshape(b, c, 9).transpose(1, 2), x.reshape(b, c, h * w))
    padded = F.pad(taps.reshape(b, 9, h, w), (1, 1, 1, 1))
    out = bias[:, None, None].expand(b, h, w)
    for tap in range(9):
        dy, dx = divmod(tap, 3)
        out = out + padded[:, tap, dy:dy + h, dx:dx + w]
    return out.unsqueeze(1)
