"""Routing every position on its own (the ``topk-token`` router): k experts per position, the
mixture taken per position, the sample's gates the mean of its positions', and the regularizers
balancing positions rather than samples."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import tiny_inputs
from sera_builtin.router_topk_token import NoisyTopKTokenRouter
from torch import nn

from sera_cli.config import LossConfig, ModelConfig
from sera_cli.errors import SeraError
from sera_cli.model.losses import sera_loss
from sera_cli.model.regularizers import assignment_loss, load_balance_loss
from sera_cli.model.routing import RoutedExperts, Routing
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class _Fixed(nn.Module):
    """Hands out fixed position gates (B, E, H, W)."""

    def __init__(self, position: torch.Tensor) -> None:
        super().__init__()
        self.position = position

    def forward(self, x: torch.Tensor) -> Routing:
        return Routing(gates=self.position.mean(dim=(2, 3)), logits=self.position,
                       position_gates=self.position)


def _halves(b: int = 2, h: int = 2, w: int = 4) -> torch.Tensor:
    """Expert 0 on the left half of every map, expert 1 on the right, expert 2 nowhere."""
    position = torch.zeros(b, 3, h, w)
    position[:, 0, :, : w // 2] = 1.0
    position[:, 1, :, w // 2:] = 1.0
    return position


@pytest.mark.parametrize("k", [1, 2, 3])
def test_every_position_keeps_its_own_k_largest_scores(k: int) -> None:
    torch.manual_seed(0)
    router = NoisyTopKTokenRouter(8, 4, k).eval()
    x = torch.randn(2, 8, 3, 5)
    routing = router(x)
    logits = router.mlp(x)
    assert routing.logits.shape == routing.position_gates.shape == (2, 4, 3, 5)
    assert ((routing.position_gates > 0).sum(1) == k).all()
    torch.testing.assert_close(routing.position_gates.sum(1), torch.ones(2, 3, 5))
    top_values, top_index = logits.topk(k, dim=1)
    torch.testing.assert_close(routing.position_gates.gather(1, top_index),
                               torch.softmax(top_values, dim=1))
    torch.testing.assert_close(routing.gates, routing.position_gates.mean(dim=(2, 3)))
    assert len({tuple(i) for i in top_index[..., 0].flatten(1).T.tolist()}) > 1, \
        "positions of one map should not all choose alike"


def test_the_router_scores_each_position_with_a_two_layer_mlp() -> None:
    layers = [type(m) for m in NoisyTopKTokenRouter(16, 4, 2).mlp]
    assert layers == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert all(m.kernel_size == (1, 1) for m in NoisyTopKTokenRouter(16, 4, 2).mlp
               if isinstance(m, nn.Conv2d))


def test_noise_explores_in_training_only() -> None:
    torch.manual_seed(0)
    router = NoisyTopKTokenRouter(8, 4, 1)
    x = torch.randn(2, 8, 6, 6)
    noisy = [router.train()(x).position_gates for _ in range(2)]
    assert not torch.equal(noisy[0], noisy[1])
    # the learned noise scale trains through the softmax over the kept scores (k >= 2)
    two = NoisyTopKTokenRouter(8, 4, 2).train()
    load_balance_loss(two(x)).backward()
    assert two.noise.weight.grad is not None and two.noise.weight.grad.abs().sum() > 0
    router.eval()
    torch.testing.assert_close(router(x).position_gates, router(x).position_gates)


def test_the_mixture_is_taken_per_position() -> None:
    stage = RoutedExperts([_Scale(2.0), _Scale(3.0), _Scale(5.0)], _Fixed(_halves()))
    x = torch.rand(2, 1, 2, 4) + 0.5
    out = stage(x)
    torch.testing.assert_close(out[..., :2], 2.0 * x[..., :2])
    torch.testing.assert_close(out[..., 2:], 3.0 * x[..., 2:])
    assert stage.last_routing.gates.tolist() == [[0.5, 0.5, 0.0]] * 2


def test_an_expert_no_position_chose_does_not_run() -> None:
    calls = []

    class _Counts(_Scale):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape[0])
            return super().forward(x)

    position = _halves()
    position[1] = 0.0
    position[1, 2] = 1.0  # the second sample: expert 2 everywhere
    stage = RoutedExperts([_Counts(2.0), _Counts(3.0), _Counts(5.0)], _Fixed(position)).eval()
    x = torch.rand(2, 1, 2, 4) + 0.5
    out = stage(x)
    assert calls == [1, 1, 1]  # each expert on the one sample that chose it somewhere
    torch.testing.assert_close(out[0, ..., :2], 2.0 * x[0, ..., :2])
    torch.testing.assert_close(out[0, ..., 2:], 3.0 * x[0, ..., 2:])
    torch.testing.assert_close(out[1], 5.0 * x[1])
    # contributions on this gathered path: |w * (f(x) - x)| / |x| of each sample's own map
    size = x.flatten(1).norm(dim=1)
    expected = torch.stack([
        torch.stack([(x[0, ..., :2] * 1.0).norm(), (x[0, ..., 2:] * 2.0).norm(), torch.tensor(0.)]),
        torch.stack([torch.tensor(0.), torch.tensor(0.), (x[1] * 4.0).norm()]),
    ]) / size[:, None]
    torch.testing.assert_close(stage.last_routing.contributions, expected)


def test_the_mixture_keeps_a_bf16_map_in_bf16() -> None:
    stage = RoutedExperts([_Scale(2.0), _Scale(3.0), _Scale(5.0)], _Fixed(_halves()))
    x = torch.ones(2, 1, 2, 4, dtype=torch.bfloat16)
    out = stage(x)
    assert out.dtype == torch.bfloat16
    assert out[..., :2].eq(2.0).all() and out[..., 2:].eq(3.0).all()


@pytest.mark.parametrize("broken", ["shape", "logits", "mean"])
def test_a_router_with_inconsistent_position_gates_is_named(broken: str) -> None:
    position = _halves()
    routing = Routing(gates=position.mean(dim=(2, 3)), logits=position, position_gates=position)
    if broken == "shape":
        routing.position_gates = routing.logits = position[..., :2]
    elif broken == "logits":
        routing.logits = position.mean(dim=(2, 3))
    else:
        routing.gates = torch.tensor([[1.0, 0.0, 0.0]] * 2)

    class _Returns(nn.Module):
        def forward(self, x: torch.Tensor) -> Routing:
            return routing

    stage = RoutedExperts([_Scale(2.0), _Scale(3.0), _Scale(5.0)], _Returns(),
                          labels=("router 'odd' (plugin mine)", ["a", "b", "c"]))
    expected = "gates that are not the mean" if broken == "mean" else "must be \\(2, 3, 2, 4\\)"
    with pytest.raises(SeraError, match=f"router 'odd' \\(plugin mine\\) returned .*{expected}"):
        stage(torch.ones(2, 1, 2, 4))


def test_contributions_weigh_each_position_by_its_gate() -> None:
    stage = RoutedExperts([_Scale(2.0), _Scale(3.0), _Scale(5.0)], _Fixed(_halves(b=1))).eval()
    x = torch.ones(1, 1, 2, 4)
    stage(x)
    # expert 0 changes the left half by 1 a position (4 positions) of a map of norm sqrt(8)
    expected = torch.tensor([[2.0 / 8 ** 0.5, 4.0 / 8 ** 0.5, 0.0]])
    torch.testing.assert_close(stage.last_routing.contributions, expected)


def test_the_regularizers_count_positions_not_samples() -> None:
    """One sample, three quarters of its positions on expert 0: balanced as a sample (both
    experts chosen once), unbalanced as positions (3 against 1)."""
    position = torch.zeros(1, 2, 2, 2)
    position[0, 0] = 1.0
    position[0, 1, 1, 1], position[0, 0, 1, 1] = 1.0, 0.0
    routing = Routing(gates=position.mean(dim=(2, 3)), logits=position * 4,
                      position_gates=position)
    gates, logits = routing.units()
    assert gates.shape == logits.shape == (4, 2)
    cv2 = torch.tensor([3.0, 1.0]).var(unbiased=False) / 4.0  # counts (3, 1), mean 2
    torch.testing.assert_close(assignment_loss(routing), cv2)
    torch.testing.assert_close(load_balance_loss(routing), cv2)
    per_sample = Routing(gates=routing.gates, logits=routing.gates)
    assert float(assignment_loss(per_sample)) == 0.0


def test_sera_trains_with_the_token_router_at_fusion(tiny_cfg: ModelConfig,
                                                     builtin_registry: Registry) -> None:
    cfg = dataclasses.replace(tiny_cfg, router="topk-token", topk=2)
    torch.manual_seed(0)
    model = build_model(cfg, builtin_registry).train()
    pixels, ids = tiny_inputs(cfg, batch=2)
    out = model(pixels, ids)
    fusion = out.routings["fusion"]
    assert fusion.position_gates is not None
    assert fusion.position_gates.shape[:2] == (2, 4)
    assert ((fusion.position_gates > 0).sum(1) == 2).all()
    loss, parts = sera_loss(out, torch.zeros(2, cfg.image_size, cfg.image_size), LossConfig())
    loss.backward()
    router = model.fusion.router
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in router.mlp.parameters())
    assert parts["assignment_loss"] >= 0.0


def test_the_adapters_may_route_per_position_too(tiny_cfg: ModelConfig,
                                                 builtin_registry: Registry) -> None:
    """With as many experts kept as there are (the adapters' two), a soft mixture per position."""
    cfg = dataclasses.replace(tiny_cfg, adapter_router="topk-token", sentence_routing=True)
    torch.manual_seed(0)
    out = build_model(cfg, builtin_registry).eval()(*tiny_inputs(cfg, batch=2))
    for stage in ("adapter.2", "adapter.4"):
        position = out.routings[stage].position_gates
        assert position is not None and position.shape[:2] == (2, 2), stage
        assert (position > 0).all(), stage
        torch.testing.assert_close(position.sum(1), torch.ones_like(position[:, 0]))
