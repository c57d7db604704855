"""The no-target head: does the expression name anything in the image at all?

gRefCOCO (ReLA, CVPR 2023) has expressions that name nothing ("the purple star" where there is
none). A mask head alone can only answer them with a mask that happens to stay under the
threshold everywhere; ReLA adds a classifier trained with BCE on the no-target flag, and so does
sera. It reads the decoded, text-conditioned map: its mean over positions (what the scene holds
overall) and its maximum (whether any one position answers the sentence strongly), beside the
sentence itself, through a two-layer MLP.
"""

from __future__ import annotations

import torch
from torch import nn


class NoTargetHead(nn.Module):
    """(B, D, H, W) decoded map, (B, D) sentence -> (B,) logits of "names nothing"."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, x: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2)  # (B, D, H, W) -> (B, D, HW)
        pooled = torch.cat([tokens.mean(2), tokens.amax(2), sentence], dim=1)  # (B, 3D)
        return self.mlp(pooled)[:, 0]
