"""Routing regularizers and the routed mixture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sera_cli.errors import SeraError
from sera_cli.model.regularizers import assignment_loss, load_balance_loss, z_loss
from sera_cli.model.routing import RoutedExperts, Routing


def _uniform(b: int = 8, e: int = 4) -> Routing:
    return Routing(gates=torch.full((b, e), 1.0 / e), logits=torch.zeros(b, e))


def _collapsed(b: int = 8, e: int = 4) -> Routing:
    logits = torch.zeros(b, e)
    logits[:, 0] = 10.0
    gates = torch.zeros(b, e)
    gates[:, 0] = 1.0
    return Routing(gates=gates, logits=logits)


def test_regularizers_vanish_for_uniform_routing() -> None:
    uniform = _uniform()
    assert z_loss(uniform) == 0
    assert load_balance_loss(uniform) < 1e-8
    assert assignment_loss(uniform) < 1e-8


def test_regularizers_grow_for_collapsed_routing() -> None:
    collapsed = _collapsed()
    assert z_loss(collapsed) > 1.0
    assert load_balance_loss(collapsed) > 1.0  # CV^2 of (8, 0, 0, 0) is 3
    assert abs(float(load_balance_loss(collapsed)) - 3.0) < 1e-5
    assert assignment_loss(collapsed) > 1.0


def test_assignment_loss_has_a_gradient() -> None:
    """Unequal counts (here 5, 3, 0, 0) must push the logits; with random logits the counts
    could come out equal, where the gradient is rightly zero, so they are fixed."""
    logits = torch.tensor([[3.0, 0, 0, 0]] * 5 + [[0, 3.0, 0, 0]] * 3, requires_grad=True)
    gates = torch.zeros(8, 4).scatter(-1, logits.argmax(-1, keepdim=True), 1.0)
    assignment_loss(Routing(gates=gates, logits=logits)).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        return x * self.factor


class _FixedRouter(nn.Module):
    def __init__(self, gates: torch.Tensor) -> None:
        super().__init__()
        self.gates = gates

    def forward(self, x: torch.Tensor) -> Routing:
        return Routing(gates=self.gates, logits=self.gates)


def test_routed_experts_mix_per_sample_and_skip_unselected() -> None:
    gates = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]])
    experts = [_Scale(2.0), _Scale(3.0), _Scale(5.0)]
    routed = RoutedExperts(experts, _FixedRouter(gates))
    x = torch.ones(2, 1, 2, 3)
    y = routed(x)
    torch.testing.assert_close(y[0], torch.full((1, 2, 3), 2.0))
    torch.testing.assert_close(y[1], torch.full((1, 2, 3), 0.25 * 2 + 0.75 * 3))
    assert [e.calls for e in experts] == [2, 1, 0]  # expert 2 never runs, expert 1 on one sample


class _Raises(nn.Module):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.exc


def test_a_failing_expert_or_router_is_named_with_its_plugin() -> None:
    labels = ("router 'topk' (plugin p)", ["fusion expert 'ok' (plugin p)",
                                            "fusion expert 'bad' (plugin q)"])
    gates = torch.tensor([[0.5, 0.5]])
    routed = RoutedExperts([_Scale(1.0), _Raises(ValueError("boom"))], _FixedRouter(gates), labels)
    with pytest.raises(SeraError, match=r"fusion expert 'bad' \(plugin q\) failed on input "
                                        r"\(1, 1, 2, 2\): ValueError: boom"):
        routed(torch.ones(1, 1, 2, 2))
    routed = RoutedExperts([_Scale(1.0)], _Raises(KeyError("k")), labels)
    with pytest.raises(SeraError, match=r"router 'topk' \(plugin p\) failed"):
        routed(torch.ones(1, 1, 2, 2))


def test_our_errors_and_out_of_memory_pass_through_unwrapped() -> None:
    gates = torch.ones(1, 1)
    for exc in (SeraError("already clear"), torch.OutOfMemoryError("out of memory")):
        routed = RoutedExperts([_Raises(exc)], _FixedRouter(gates))
        with pytest.raises(type(exc)) as info:
            routed(torch.ones(1, 1, 2, 2))
        assert info.value is exc
