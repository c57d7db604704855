"""What a router returns, and the routed mixture of experts behind one router.

Every router (soft or sparse, built-in or from a plugin) returns a ``Routing``; the regularizers
(``regularizers.py``) read only that, so they apply to any router by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sera_cli.errors import SeraError


@dataclass
class Routing:
    """gates: (B, E) mixture weights, zero for unselected experts, each row sums to 1.
    logits: (B, E) the router's raw scores (before noise), used by the regularizers.
    contributions: (B, E) ``|gate * (expert(x) - x)| / |x|`` per sample, filled by
    RoutedExperts outside training (a diagnostic: how much each expert changed its input).
    position_gates: (B, E, H, W) from a router that routes every position on its own (then
    ``logits`` are (B, E, H, W) too, and ``gates`` are the position gates' mean, so a sample's
    row is still zero exactly for the experts none of its positions chose); None for a router
    that routes whole samples."""

    gates: torch.Tensor
    logits: torch.Tensor
    contributions: torch.Tensor | None = None
    position_gates: torch.Tensor | None = None

    def units(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Gates and logits of each routed unit, (N, E): one row per sample, or per position
        for a per-position router, whose load the regularizers must balance over positions."""
        if self.position_gates is None:
            return self.gates, self.logits
        experts = self.position_gates.shape[1]
        return (self.position_gates.movedim(1, -1).reshape(-1, experts),
                self.logits.movedim(1, -1).reshape(-1, experts))


class RoutedExperts(nn.Module):
    """A set of experts behind one router: out = sum_e gate_e * expert_e(x), with one gate per
    sample or, from a per-position router, one per position.

    Experts run only on the samples that selected them, so sparse top-k routing per sample saves
    compute (routed per position, nearly every sample has some position that chose each expert).
    ``labels`` name the router and each expert with its plugin (``"fusion expert 'shape' (plugin
    sera_builtin)"``): a plugin's bug surfacing mid-training then says whose it is.

    ``condition``, where given, maps an expression feature (B, Dc) to the stage's width; the
    router then sees the map plus that vector at every position (a pooling router: the pooled
    map plus the expression), the experts the map alone. Without it the router sees only the
    map, as in the paper, where an adapter's gates cannot tell two expressions of one image apart.
    """

    def __init__(self, experts: list[nn.Module], router: nn.Module,
                 labels: tuple[str, list[str]] | None = None,
                 condition: nn.Module | None = None) -> None:
        super().__init__()
        self.experts = nn.ModuleList(experts)
        self.router = router
        self.condition = condition
        self.router_label, self.expert_labels = labels or (
            "router", [f"expert {e}" for e in range(len(experts))])
        self.last_routing: Routing | None = None

    def forward(self, x: torch.Tensor, expression: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W); ``expression`` (B, Dc) is what ``condition`` reads."""
        if not self.experts:
            return x
        seen = x
        if self.condition is not None:
            if expression is None:
                raise SeraError(f"{self.router_label} routes on the expression, but none was given")
            seen = x + self.condition(expression).to(x.dtype)[:, :, None, None]
        routing: Routing = _named_call(self.router_label, self.router, seen)  # gates (B, E)
        if routing.position_gates is not None:
            _check_position_gates(self.router_label, routing, x)
        self.last_routing = routing
        gates = routing.gates.to(x.dtype)
        # (B, E, 1, 1) per sample, or (B, E, H, W) per position: broadcast over the map
        weights = (gates[:, :, None, None] if routing.position_gates is None
                   else routing.position_gates.to(x.dtype))
        chosen_by = gates != 0  # (B, E)
        counts = chosen_by.sum(0).tolist()  # one host sync for all experts, not one per expert
        diagnose = not self.training
        if diagnose:
            routing.contributions = x.new_zeros(gates.shape, dtype=torch.float32)
            size = x.detach().float().flatten(1).norm(dim=1).clamp_min(1e-12)  # (B,)
        out: torch.Tensor | None = None
        for e, expert in enumerate(self.experts):
            if counts[e] == 0:
                continue
            label = self.expert_labels[e]
            if counts[e] == x.shape[0]:  # every sample: no gather, no scatter
                gate = weights[:, e:e + 1]
                refined = _named_call(label, expert, x)
                contrib = gate * refined
                out = contrib if out is None else out + contrib
                chosen = None
            else:
                chosen = chosen_by[:, e].nonzero(as_tuple=True)[0]
                gate = weights[chosen, e:e + 1]
                refined = _named_call(label, expert, x[chosen])
                contrib = gate * refined
                out = (torch.zeros_like(x) if out is None else out).index_add(0, chosen, contrib)
            if diagnose:
                inputs = x if chosen is None else x[chosen]
                change = (gate * (refined - inputs)).detach().float().flatten(1).norm(dim=1)
                where = slice(None) if chosen is None else chosen
                routing.contributions[where, e] = change / size[where]
        return torch.zeros_like(x) if out is None else out

def _check_position_gates(label: str, routing: Routing, x: torch.Tensor) -> None:
    """A per-position routing must fit the map ``x``. A mismatch would otherwise surface as a
    broadcasting error naming no plugin, or (gates that are not the position gates' mean) as
    experts skipped at positions that chose them."""
    b, _, h, w = x.shape
    position, experts = routing.position_gates, routing.gates.shape[-1]
    if tuple(position.shape) != (b, experts, h, w) or position.shape != routing.logits.shape:
        raise SeraError(f"{label} returned position gates {tuple(position.shape)} and logits "
                        f"{tuple(routing.logits.shape)} for a map {tuple(x.shape)}: both must be "
                        f"{(b, experts, h, w)}")
    if not torch.allclose(routing.gates.float(), position.float().mean(dim=(2, 3)), atol=1e-4):
        raise SeraError(f"{label} returned gates that are not the mean of its position gates")


def _named_call(label: str, module: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    """Call a plugin's module; its own exception becomes a SeraError naming it. Our errors and
    running out of memory (the user's batch size, not the plugin's bug) pass through."""
    try:
        return module(x)
    except (SeraError, torch.OutOfMemoryError):
        raise
    except Exception as exc:
        raise SeraError(f"{label} failed on input {tuple(x.shape)}: "
                        f"{type(exc).__name__}: {exc}") from exc
