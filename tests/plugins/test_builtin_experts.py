"""The built-in experts and routers: shapes on odd sizes, routing invariants, fixed operators."""

from __future__ import annotations

import pytest
import torch

from sera_cli.registry import Registry


@pytest.mark.parametrize("stage,name", [("adapter", "spatial"), ("adapter", "boundary"),
                                        ("fusion", "spatial"), ("fusion", "context"),
                                        ("fusion", "boundary"), ("fusion", "shape")])
def test_expert_keeps_shape_on_odd_sizes(builtin_registry: Registry, stage: str,
                                         name: str) -> None:
    expert = builtin_registry.expert(stage, name).build(16)
    x = torch.randn(3, 16, 7, 9)
    y = expert(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert any(p.grad is not None for p in expert.parameters())


@pytest.mark.parametrize("name", ["spatial", "context", "boundary", "shape"])
def test_untrained_fusion_expert_returns_its_input(builtin_registry: Registry, name: str) -> None:
    expert = builtin_registry.expert("fusion", name).build(8)
    x = torch.randn(2, 8, 7, 9)
    torch.testing.assert_close(expert(x), x)


@pytest.mark.parametrize("router,k", [("soft", 4), ("topk", 1), ("topk", 2), ("topk", 3),
                                      ("topk", 4)])
def test_router_gates_shape_and_sum(builtin_registry: Registry, router: str, k: int) -> None:
    r = builtin_registry.router(router).build(16, 4, k)
    for training in (True, False):
        r.train(training)
        routing = r(torch.randn(5, 16, 7, 9))
        assert routing.gates.shape == routing.logits.shape == (5, 4)
        torch.testing.assert_close(routing.gates.sum(-1), torch.ones(5))
        assert (routing.gates >= 0).all()
        assert ((routing.gates > 0).sum(-1) == k).all()


def test_topk_noise_only_in_training(builtin_registry: Registry) -> None:
    torch.manual_seed(0)
    r = builtin_registry.router("topk").build(16, 4, 4)
    torch.nn.init.constant_(r.noise.bias, 5.0)  # large noise scale: gates must move in training
    x = torch.randn(6, 16, 5, 5)
    r.train()
    assert not torch.allclose(r(x).gates, r(x).gates)
    r.eval()
    torch.testing.assert_close(r(x).gates, r(x).gates)
    torch.testing.assert_close(r(x).gates, torch.softmax(r(x).logits, -1))


def test_sobel_responds_to_vertical_edge_not_flat_map(builtin_registry: Registry) -> None:
    expert = builtin_registry.expert("fusion", "boundary").build(1)
    flat = torch.full((1, 1, 7, 9), 3.0)
    assert expert.gradient_magnitude(flat).abs().max() < 1e-5
    edge = torch.zeros(1, 1, 7, 9)
    edge[..., 5:] = 1.0  # a vertical edge between columns 4 and 5
    response = expert.gradient_magnitude(edge)[0, 0]
    assert response[:, 4:6].min() > 1.0
    assert response[:, :3].abs().max() < 1e-5 and response[:, 7:].abs().max() < 1e-5


def test_fixed_operators_are_buffers_not_parameters(builtin_registry: Registry) -> None:
    for name in ("boundary", "shape"):
        expert = builtin_registry.expert("fusion", name).build(4)
        names = [n for n, _ in expert.named_parameters()]
        assert not any("kernels" in n for n in names)
        assert any("kernels" in n for n, _ in expert.named_buffers())


def test_spatial_expert_sees_position(builtin_registry: Registry) -> None:
    expert = builtin_registry.expert("fusion", "spatial").build(2)
    torch.nn.init.normal_(expert.project.weight)
    x = torch.zeros(1, 2, 5, 7)
    y = expert(x)
    # A constant input differs left to right only through the coordinate grid.
    assert not torch.allclose(y[..., 0], y[..., -1])
