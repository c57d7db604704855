"""The routing regularizers against expert collapse, applied to every router's ``Routing``:
z-loss (logit magnitude), load balance (gate weight per expert) and assignment (units per
expert). A unit is what the router routes: a sample, or a position for a per-position router
(``Routing.units``). Each is summed over routers and weighted by its ``loss`` config value."""

from __future__ import annotations

import torch

from sera_cli.model.routing import Routing


def cv_squared(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Squared coefficient of variation: zero when all entries are equal, large when one
    dominates."""
    if x.numel() <= 1:
        return x.new_zeros(())
    return x.float().var(unbiased=False) / (x.float().mean() ** 2 + eps)


def z_loss(routing: Routing) -> torch.Tensor:
    """Mean square of the router logits: keeps them small so the softmax stays trainable."""
    return routing.logits.float().pow(2).mean()


def load_balance_loss(routing: Routing) -> torch.Tensor:
    """CV^2 of the gate weight each expert receives, summed over the units (importance)."""
    gates, _ = routing.units()
    return cv_squared(gates.sum(0))


def assignment_loss(routing: Routing) -> torch.Tensor:
    """CV^2 of how many units each expert receives.

    The count of units with a non-zero gate has no gradient, so the count is relaxed to the
    softmax of the full logits (the probability that an expert would be chosen); it equals the
    hard counts' ordering and vanishes exactly when every expert is equally likely to be picked.
    """
    gates, logits = routing.units()
    soft_counts = torch.softmax(logits.float(), dim=-1).sum(0)
    hard_counts = (gates > 0).float().sum(0)
    # Straight-through: the value is the hard counts' CV^2, the gradient the soft counts'.
    counts = soft_counts + (hard_counts - soft_counts).detach()
    return cv_squared(counts)
