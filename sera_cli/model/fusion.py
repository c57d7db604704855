"""SERA-Fusion: the experts behind one router on the text-conditioned map, and the builder of any
routed stage from plugin specs (the SERA-Adapter's experts are built the same way)."""

from __future__ import annotations

from typing import Any

from torch import nn

from sera_cli.model.routing import RoutedExperts


def build_routed(specs: list[Any], router_spec: Any, dim: int, top_k: int,
                 expression_dim: int | None = None) -> RoutedExperts:
    """Experts from their specs at width ``dim`` behind the router ``router_spec`` keeping
    ``top_k``; labels name each plugin so a failing forward says whose it is. With
    ``expression_dim``, the router also sees the expression (a Linear from that width to
    ``dim``, see RoutedExperts); a stage without experts gets none, so its weights are as before."""
    experts = [s.build(dim) for s in specs]
    router = router_spec.build(dim, len(experts), top_k) if router_spec else nn.Identity()
    condition = nn.Linear(expression_dim, dim) if expression_dim and experts else None
    labels = (f"router '{router_spec.name}' (plugin {router_spec.plugin})" if router_spec
              else "router",
              [f"{s.stage} expert '{s.name}' (plugin {s.plugin})" for s in specs])
    return RoutedExperts(experts, router, labels, condition)


def build_fusion(dim: int, specs: list[Any], router_spec: Any, top_k: int,
                 expression_dim: int | None = None) -> RoutedExperts:
    """SERA-Fusion, (B, D, H, W) -> (B, D, H, W): the four fusion experts behind the noisy top-k
    router, on the text-conditioned map between the neck and the decoder. With no experts it is
    the identity: the "no experts" ablation. Its module path stays ``fusion`` in checkpoints."""
    return build_routed(specs, router_spec, dim, top_k, expression_dim)
