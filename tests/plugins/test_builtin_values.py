"""The built-in experts and routers on inputs whose answer is known: which experts a router
picks, what attention attends to, what the fixed kernels compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sera_builtin._ops import GAUSSIAN, LAPLACIAN, SOBEL, FixedDepthwise
from sera_builtin.fusion_context import ContextExpert
from sera_builtin.router_soft import SoftRouter
from sera_builtin.router_topk import NoisyTopKRouter
from torch import nn


def _router_with_logits(router: nn.Module, logits: list[float]) -> nn.Module:
    """Make the router's final layer ignore its input and output ``logits``."""
    last = router.mlp[-1] if hasattr(router, "mlp") else router.proj
    nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor(logits))
    return router.eval()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_topk_router_keeps_the_largest_logits_and_renormalizes_them(k: int) -> None:
    logits = [0.5, 3.0, -1.0, 2.0]
    router = _router_with_logits(NoisyTopKRouter(16, 4, k), logits)
    routing = router(torch.randn(3, 16, 5, 5))
    best = sorted(range(4), key=lambda e: -logits[e])[:k]  # 1, 3, 0
    expected = torch.zeros(4)
    expected[best] = torch.softmax(torch.tensor(logits)[best], 0)
    assert torch.allclose(routing.gates, expected.expand(3, 4), atol=1e-6)
    assert torch.allclose(routing.logits, torch.tensor(logits).expand(3, 4))
    assert ((routing.gates > 0).sum(1) == k).all()


def test_topk_router_is_a_two_layer_mlp_on_the_pooled_map() -> None:
    """The paper's router: global average pool, then two linear layers with a ReLU between."""
    router = NoisyTopKRouter(64, 4, 2)
    layers = [type(m) for m in router.mlp]
    assert layers == [nn.Linear, nn.ReLU, nn.Linear]
    x = torch.randn(2, 64, 6, 6)
    shifted = x - x.mean(dim=(2, 3), keepdim=True) + x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(router.eval()(x).logits, router(shifted).logits, atol=1e-5)
    pooled = x.mean(dim=(2, 3))
    assert torch.allclose(router(x).logits, router.mlp(pooled), atol=1e-6)


def test_soft_router_is_a_softmax_over_every_expert() -> None:
    router = SoftRouter(16, 2)
    x = torch.randn(3, 16, 4, 4)
    routing = router(x)
    assert torch.allclose(routing.gates, torch.softmax(routing.logits, -1))
    assert (routing.gates > 0).all()


def test_context_expert_is_multi_head_attention_over_positions() -> None:
    """Its fused forward equals nn.MultiheadAttention's own, with distinct query, key and value
    projections, so a swapped key and value would show."""
    torch.manual_seed(0)
    expert = ContextExpert(128)  # 2 heads of 64
    nn.init.normal_(expert.attn.out_proj.weight, std=0.1)
    x = torch.randn(2, 128, 3, 5)
    tokens = expert.norm(x.flatten(2).transpose(1, 2))
    reference = expert.attn(tokens, tokens, tokens, need_weights=False)[0]
    expected = x + reference.transpose(1, 2).reshape(2, 128, 3, 5)
    assert torch.allclose(expert(x), expected, atol=1e-5)


def test_context_expert_attends_to_the_matching_key() -> None:
    """Three positions with features e1, e2, e3 and ids 1, 2, 3 in channel 10. Each query asks
    for the next feature (e1 -> e2 -> e3 -> e1) and the values read the id: every position
    must come back with the id of the position its query matches."""
    c = 64
    expert = ContextExpert(c)
    w = torch.zeros(3 * c, c)
    for src, dst in ((1, 2), (2, 3), (3, 1)):
        w[dst, src] = 400.0  # queries: a sharp match, past the 1/sqrt(64) scale
    w[c:2 * c] = torch.eye(c)  # keys: the features themselves
    w[2 * c, 10] = 1.0  # values: channel 0 reads the id
    expert.attn.in_proj_weight.data.copy_(w)
    expert.attn.in_proj_bias.data.zero_()
    expert.attn.out_proj.weight.data.copy_(torch.eye(c))
    expert.norm = nn.Identity()  # type: ignore[assignment]
    x = torch.zeros(1, c, 1, 3)
    for pos in range(3):
        x[0, pos + 1, 0, pos] = 1.0
        x[0, 10, 0, pos] = pos + 1.0
    got = (expert(x) - x)[0, 0, 0]
    assert torch.allclose(got, torch.tensor([2.0, 3.0, 1.0]), atol=1e-3)


def test_blur_and_laplacian_kernels_have_their_textbook_values() -> None:
    assert torch.equal(GAUSSIAN * 16, torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]))
    assert torch.equal(LAPLACIAN, torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]))
    assert torch.equal(SOBEL[0], torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    assert torch.equal(SOBEL[1], SOBEL[0].T)


def test_fixed_filters_on_known_maps() -> None:
    """A delta blurred is the Gaussian itself; the Laplacian of x^2 + y^2 is 4; replicate
    padding keeps a constant map's Laplacian zero at the border."""
    blur = FixedDepthwise(torch.stack([GAUSSIAN, LAPLACIAN]))
    delta = torch.zeros(1, 1, 5, 5)
    delta[0, 0, 2, 2] = 1.0
    blurred, _ = blur(delta)
    assert torch.allclose(blurred[0, 0, 1:4, 1:4], GAUSSIAN.flip(0, 1))
    ys, xs = torch.meshgrid(torch.arange(7.0), torch.arange(7.0), indexing="ij")
    _, lap = blur((xs ** 2 + ys ** 2)[None, None])
    assert torch.allclose(lap[0, 0, 1:-1, 1:-1], torch.full((5, 5), 4.0))
    _, flat = blur(torch.full((1, 2, 4, 4), 3.0))
    assert torch.equal(flat, torch.zeros_like(flat))
    step = torch.zeros(1, 1, 4, 6)
    step[..., 3:] = 1.0
    gx = FixedDepthwise(SOBEL[:1])(step)[0]
    assert torch.equal(gx[0, 0, :, 2], torch.full((4,), 4.0)) and gx[0, 0, :, 0].abs().sum() == 0
    assert torch.allclose(F.conv2d(F.pad(step, (1, 1, 1, 1), mode="replicate"),
                                   SOBEL[:1, None]), gx)
