"""sera's built-in experts and routers, registered exactly as a third-party plugin would be.

Factories are ``"module:Class"`` strings so that loading this plugin does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable

from sera_cli.hookspecs import ExpertSpec, RouterSpec, hookimpl

_HERE = __name__


@hookimpl
def sera_register_experts(register: Callable[[ExpertSpec], None]) -> None:
    for name, stage, cls, description in [
        ("spatial", "adapter", "adapter_spatial:SpatialAdapterExpert",
         "depthwise 3x3 + pointwise + BN + ReLU, residual x0.3: local feature consistency"),
        ("boundary", "adapter", "adapter_boundary:BoundaryAdapterExpert",
         "depthwise 3x3 + pointwise, residual x0.1: boundary-sensitive responses"),
        ("spatial", "fusion", "fusion_spatial:SpatialExpert",
         "normalized coordinate grid, 1x1 projection: explicit position for 'left', 'top'"),
        ("context", "fusion", "fusion_context:ContextExpert",
         "self-attention over all positions: long-range context and relations"),
        ("boundary", "fusion", "fusion_boundary:BoundaryExpert",
         "fixed Sobel gradients, magnitude, 1x1 conv: sharp object edges"),
        ("shape", "fusion", "fusion_shape:ShapeExpert",
         "fixed blur + Laplacian, 1x1 conv: low-frequency extent with high-frequency structure"),
    ]:
        register(ExpertSpec(name, stage, f"{_HERE}.{cls}", description))  # type: ignore[arg-type]


@hookimpl
def sera_register_routers(register: Callable[[RouterSpec], None]) -> None:
    register(RouterSpec("soft", f"{_HERE}.router_soft:SoftRouter",
                        "pool -> linear -> softmax over all experts (SERA-Adapter)"))
    register(RouterSpec("topk", f"{_HERE}.router_topk:NoisyTopKRouter",
                        "pool -> 2-layer MLP -> noisy top-k -> softmax over k (SERA-Fusion)",
                        sparse=True))
    register(RouterSpec("topk-token", f"{_HERE}.router_topk_token:NoisyTopKTokenRouter",
                        "per position: 2-layer 1x1 MLP -> noisy top-k -> softmax over k",
                        sparse=True))
