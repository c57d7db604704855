"""Training objective: mask BCE (+ optional Dice), the no-target BCE of a model with that head,
and the routing regularizers of every router."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sera_cli.config import LossConfig
from sera_cli.model.regularizers import assignment_loss, load_balance_loss, z_loss
from sera_cli.model.routing import Routing
from sera_cli.model.sera import SeraOutput


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def routing_losses(routings: dict[str, Routing]) -> dict[str, torch.Tensor]:
    """Each regularizer summed over routers (zero when the model has none)."""
    zero = torch.zeros(())
    regularizers = {"z_loss": z_loss, "balance_loss": load_balance_loss,
                    "assignment_loss": assignment_loss}  # keyed by their LossConfig weights
    return {name: sum((f(r) for r in routings.values()), start=zero)
            for name, f in regularizers.items()}


def sera_loss(output: SeraOutput, mask: torch.Tensor, weights: LossConfig,
              no_target: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """mask: (B, S, S) letterboxed ground truth in {0, 1} (empty for an expression naming
    nothing), resized to the logits' resolution; no_target: (B,) flags in {0, 1}, scored by the
    no-target head when the model has one (as ReLA trains its own)."""
    logits = output.logits.float()
    target = F.interpolate(mask[:, None].float(), size=logits.shape[-2:], mode="nearest")
    parts = {"bce": F.binary_cross_entropy_with_logits(logits, target)}
    if weights.dice:
        parts["dice"] = dice_loss(logits, target)
    if output.no_target is not None and no_target is not None:
        parts["no_target_loss"] = F.binary_cross_entropy_with_logits(
            output.no_target.float(), no_target.float().to(logits.device))
    parts.update({k: v.to(logits.device) for k, v in routing_losses(output.routings).items()})
    total = sum(getattr(weights, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}
