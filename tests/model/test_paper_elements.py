"""The paper's elements, pinned: each test fails if its element is removed or changed
(SERA-Adapter's pipeline order, alpha and beta, the adapter blocks of sera-b, the regularizers
in the loss of a real forward)."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_inputs
from sera_builtin.adapter_boundary import BoundaryAdapterExpert
from sera_builtin.adapter_spatial import SpatialAdapterExpert
from torch import nn

from sera_cli.config import ModelConfig, preset
from sera_cli.model.adapter import SeraAdapter
from sera_cli.model.losses import sera_loss
from sera_cli.model.routing import RoutedExperts
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry


def test_sera_adapter_runs_its_pipeline_in_the_papers_order() -> None:
    """projection -> grid -> 1x1/3x3/5x5 -> experts -> cross-attention -> residual (up)."""

    class Recorder(nn.Module):
        def __init__(self, log: list[str]) -> None:
            super().__init__()
            self.log = log

        def forward(self, x: torch.Tensor, expression: torch.Tensor | None = None
                    ) -> torch.Tensor:
            assert x.dim() == 4, "experts see the token grid (B, C, H, W)"
            self.log.append("experts")
            return x

    calls: list[str] = []
    adapter = SeraAdapter(24, 8, 16, RoutedExperts([], nn.Identity()))
    adapter.experts = Recorder(calls)  # type: ignore[assignment]
    for name in ("down", "multiscale", "cross", "up"):
        getattr(adapter, name).register_forward_hook(lambda m, i, o, n=name: calls.append(n))
    for i, branch in enumerate(adapter.multiscale.branches):
        branch.register_forward_hook(lambda m, i_, o, k=(1, 3, 5)[i]: calls.append(f"{k}x{k}"))
    adapter(torch.randn(2, 12, 24), (3, 4), torch.randn(2, 5, 16), torch.zeros(2, 5, dtype=bool))
    assert calls == ["down", "1x1", "3x3", "5x5", "multiscale", "experts", "cross", "up"]
    kernels = [b.kernel_size for b in adapter.multiscale.branches]
    assert kernels == [(1, 1), (3, 3), (5, 5)]


def test_adapter_residual_scales_are_alpha_03_and_beta_01() -> None:
    """spatial: x + 0.3 * f(x); boundary: x + 0.1 * f(x), with f the expert's own body."""
    x = torch.randn(2, 8, 5, 5)
    spatial = SpatialAdapterExpert(8).eval()
    assert spatial.alpha == 0.3
    assert torch.allclose(spatial(x), x + 0.3 * spatial.body(x))
    assert [type(m) for m in spatial.body] == [nn.Conv2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert spatial.body[0].groups == 8 and spatial.body[0].kernel_size == (3, 3)
    boundary = BoundaryAdapterExpert(8)
    assert boundary.beta == 0.1
    assert torch.allclose(boundary(x), x + 0.1 * boundary.pointwise(boundary.depthwise(x)))
    assert boundary.depthwise.groups == 8 and boundary.depthwise.kernel_size == (3, 3)


def test_sera_b_places_adapters_in_detris_blocks() -> None:
    cfg = preset("sera-b")
    assert cfg.adapter_blocks == [2, 4, 6, 8, 10, 12] == ModelConfig().adapter_blocks
    assert cfg.adapter_experts == ["spatial", "boundary"] and cfg.adapter_router == "soft"
    assert cfg.experts == ["spatial", "context", "boundary", "shape"] and cfg.router == "topk"
    assert cfg.topk == 4 and cfg.adapter_scale == 0.2 and cfg.tune == "bias-ln"


@pytest.mark.parametrize("term", ["z_loss", "balance_loss", "assignment_loss"])
def test_each_regularizer_of_every_router_reaches_the_loss(builtin_registry: Registry,
                                                           term: str) -> None:
    """On a real forward (two adapter routers and the fusion router), raising a regularizer's
    weight raises the loss by its part; the part sums over all three routers."""
    cfg = preset("sera-tiny")
    cfg.topk = 2  # so the assignment loss is not identically zero (see docs/architecture.md);
    # the fusion router's choices are fixed, so the counts never come out equal by chance
    torch.manual_seed(0)
    model = build_model(cfg, builtin_registry).eval()  # no routing noise: fixed choices
    last = model.fusion.router.mlp[-1]  # every sample keeps experts 0 and 1: counts 2, 2, 0, 0
    nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([3.0, 2.0, 1.0, 0.0]))
    out = model(*tiny_inputs(cfg))
    assert sorted(out.routings) == ["adapter.2", "adapter.4", "fusion"]
    mask = torch.zeros(2, cfg.image_size, cfg.image_size)
    base, parts = sera_loss(out, mask, cfg.loss)
    setattr(cfg.loss, term, getattr(cfg.loss, term) + 1.0)
    raised, _ = sera_loss(out, mask, cfg.loss)
    assert parts[term] > 0
    assert raised.item() == pytest.approx(base.item() + parts[term], rel=1e-5)
