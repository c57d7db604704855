"""The built-in experts' arithmetic by value: each adds its refinement to its input with the
documented scale, their layers are the documented ones, attention heads follow the width, the
spatial expert's grid is cached per size, device and dtype, and routers give float32 gates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sera_builtin._ops import SOBEL, FixedDepthwise
from sera_builtin.adapter_boundary import BoundaryAdapterExpert
from sera_builtin.adapter_spatial import SpatialAdapterExpert
from sera_builtin.fusion_boundary import BoundaryExpert
from sera_builtin.fusion_context import ContextExpert
from sera_builtin.fusion_shape import ShapeExpert
from sera_builtin.fusion_spatial import SpatialExpert
from sera_builtin.router_soft import SoftRouter
from sera_builtin.router_topk import NoisyTopKRouter
from torch import nn


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _live(module: nn.Module) -> nn.Module:
    """Every parameter drawn from N(0, 0.5), so that zero-initialized projections act."""
    torch.manual_seed(1)
    for p in module.parameters():
        nn.init.normal_(p, std=0.5)
    return module


def test_the_adapter_experts_add_a_scaled_refinement() -> None:
    x = _x(2, 4, 5, 6)
    spatial = _live(SpatialAdapterExpert(4)).eval()
    assert spatial.alpha == 0.3
    torch.testing.assert_close(spatial(x) - x, 0.3 * spatial.body(x))
    boundary = _live(BoundaryAdapterExpert(4))
    assert boundary.beta == 0.1
    torch.testing.assert_close(boundary(x) - x, 0.1 * boundary.pointwise(boundary.depthwise(x)))


def test_the_adapter_experts_are_depthwise_then_pointwise() -> None:
    """depthwise 3x3 (one 3x3 filter per channel) + pointwise, as the registry describes them;
    the spatial one then normalizes and rectifies."""
    spatial = SpatialAdapterExpert(6)
    assert [type(m) for m in spatial.body] == [nn.Conv2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    depthwise, pointwise = spatial.body[0], spatial.body[1]
    boundary = BoundaryAdapterExpert(6)
    for dw, pw in ((depthwise, pointwise), (boundary.depthwise, boundary.pointwise)):
        assert dw.weight.shape == (6, 1, 3, 3) and dw.padding == (1, 1)
        assert pw.weight.shape == (6, 6, 1, 1)
    out = spatial.eval().body(_x(1, 6, 4, 4))
    assert (out >= 0).all() and (out == 0).any()  # rectified


def test_the_fusion_experts_add_their_projection_to_the_input() -> None:
    x = _x(2, 3, 5, 7)
    boundary = _live(BoundaryExpert(3))
    torch.testing.assert_close(boundary(x) - x, boundary.fuse(boundary.gradient_magnitude(x)))
    shape = _live(ShapeExpert(3))
    blurred, laplacian = shape.filters(x)
    interleaved = torch.stack([blurred, laplacian], dim=2).flatten(1, 2)  # channel 2c + k
    torch.testing.assert_close(shape(x) - x, shape.fuse(interleaved))
    spatial = _live(SpatialExpert(3))
    grid = spatial.grid(x).expand(2, -1, -1, -1)
    torch.testing.assert_close(spatial(x) - x, spatial.project(torch.cat([x, grid], dim=1)))


@pytest.mark.parametrize("channels, heads", [(32, 1), (64, 1), (192, 3), (200, 2), (512, 8),
                                             (576, 8)])
def test_attention_heads_are_64_wide_at_most_8_and_divide_the_width(channels: int,
                                                                     heads: int) -> None:
    assert ContextExpert(channels).attn.num_heads == heads


def test_context_expert_uses_the_projection_biases() -> None:
    torch.manual_seed(0)
    expert = _live(ContextExpert(64))
    x = _x(1, 64, 2, 3)
    tokens = expert.norm(x.flatten(2).transpose(1, 2))
    reference = expert.attn(tokens, tokens, tokens, need_weights=False)[0]
    expected = x + reference.transpose(1, 2).reshape(1, 64, 2, 3)
    torch.testing.assert_close(expert(x), expected, atol=1e-5, rtol=1e-4)


def test_the_coordinate_grid_is_built_once_per_size_device_and_dtype() -> None:
    expert = SpatialExpert(2)
    x = torch.zeros(1, 2, 3, 4)
    grid = expert.grid(x)
    assert grid.shape == (1, 2, 3, 4) and grid.dtype == torch.float32
    assert expert.grid(torch.ones(5, 2, 3, 4)) is grid  # same size: reused
    wider = expert.grid(torch.zeros(1, 2, 3, 5))
    assert wider.shape == (1, 2, 3, 5)
    assert expert.grid(torch.zeros(1, 2, 3, 5)) is wider
    double = expert.grid(torch.zeros(1, 2, 3, 5, dtype=torch.float64))
    assert double.dtype == torch.float64 and double.shape == (1, 2, 3, 5)
    torch.testing.assert_close(double[0, 0, 0], torch.linspace(-1, 1, 5, dtype=torch.float64))
    torch.testing.assert_close(double[0, 1, :, 0], torch.linspace(-1, 1, 3, dtype=torch.float64))


def test_the_coordinate_grid_follows_the_input_device_not_the_default_device() -> None:
    # under torch.set_default_device the grid still goes where the input is: the meta device
    # stands in for an accelerator on a CPU-only machine
    expert = _live(SpatialExpert(2))
    x, wider = _x(1, 2, 3, 4), torch.zeros(1, 2, 3, 5)  # made outside: on the CPU
    expected = expert(x)
    with torch.device("meta"):
        grid = expert.grid(wider)  # a new size: built under the default device
        out = expert(x)
    assert grid.device == wider.device and out.device == x.device
    torch.testing.assert_close(out, expected)


def test_fixed_kernels_follow_the_input_dtype() -> None:
    step = torch.zeros(1, 1, 4, 6, dtype=torch.float64)
    step[..., 3:] = 1.0
    (gx,) = FixedDepthwise(SOBEL[:1])(step)
    assert gx.dtype == torch.float64
    assert torch.equal(gx[0, 0, :, 2], torch.full((4,), 4.0, dtype=torch.float64))


def test_topk_router_hidden_layer_is_a_quarter_of_the_width_at_least_16() -> None:
    assert NoisyTopKRouter(128, 4, 2).mlp[0].out_features == 32
    assert NoisyTopKRouter(32, 4, 2).mlp[0].out_features == 16
    assert NoisyTopKRouter(200, 4, 2).mlp[2].in_features == 50


def test_training_noise_is_gaussian_scaled_by_the_softplus_of_the_noise_layer() -> None:
    """Noisy top-k (Shazeer et al.): scores = logits + N(0, 1) * softplus(W_noise x)."""
    router = NoisyTopKRouter(16, 6, 2)
    nn.init.normal_(router.noise.weight, std=2.0)
    nn.init.constant_(router.noise.bias, 1.0)
    x = _x(32, 16, 3, 3)
    torch.manual_seed(5)
    routing = router.train()(x)
    torch.manual_seed(5)
    pooled = x.mean(dim=(2, 3))
    logits = router.mlp(pooled)
    scores = logits + torch.randn_like(logits) * F.softplus(router.noise(pooled))
    top_values, top_index = scores.topk(2, dim=-1)
    expected = torch.zeros(32, 6).scatter(-1, top_index, torch.softmax(top_values, -1))
    torch.testing.assert_close(routing.gates, expected)
    torch.testing.assert_close(routing.logits, logits)  # before noise, for the z-loss
    assert not torch.equal(routing.gates, router.eval()(x).gates)


@pytest.mark.parametrize("router", [NoisyTopKRouter(16, 4, 2), SoftRouter(16, 4)],
                         ids=["topk", "soft"])
def test_gates_are_float32_in_a_bfloat16_model(router: nn.Module) -> None:
    router = router.to(torch.bfloat16).eval()
    routing = router(_x(3, 16, 4, 4).to(torch.bfloat16))
    assert routing.gates.dtype == torch.float32
    torch.testing.assert_close(routing.gates.sum(-1), torch.ones(3))
