"""RoutedExperts by value: the mixture over experts that serve every sample or some, skipped
experts, the diagnostic contributions outside training, dtypes, and the default labels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sera_cli.errors import SeraError
from sera_cli.model.routing import RoutedExperts, Routing


class _Affine(nn.Module):
    """x * factor + shift, counting the samples it sees."""

    def __init__(self, factor: float, shift: float = 0.0) -> None:
        super().__init__()
        self.factor, self.shift, self.calls = factor, shift, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        return x * self.factor + self.shift


class _Fixed(nn.Module):
    def __init__(self, gates: list[list[float]]) -> None:
        super().__init__()
        self.gates = torch.tensor(gates)

    def forward(self, x: torch.Tensor) -> Routing:
        return Routing(gates=self.gates, logits=self.gates * 2)


class _Fails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("boom")


def _input(b: int = 3, c: int = 3) -> torch.Tensor:
    return torch.arange(1.0, 1.0 + b * c * 4).reshape(b, c, 2, 2) / 10


def _expected_contributions(x: torch.Tensor, gates: list[list[float]],
                            experts: list[_Affine]) -> torch.Tensor:
    """||gate * (expert(x) - x)|| / ||x|| per sample and expert, 0 where the gate is 0."""
    g = torch.tensor(gates)
    norms = x.flatten(1).norm(dim=1)
    expected = torch.stack([
        (g[:, e].view(-1, 1, 1, 1) * (x * m.factor + m.shift - x)).flatten(1).norm(dim=1)
        for e, m in enumerate(experts)], dim=1) / norms[:, None]
    expected[g == 0] = 0.0
    return expected


def _mixture(x: torch.Tensor, gates: list[list[float]], experts: list[_Affine]) -> torch.Tensor:
    g = torch.tensor(gates)
    return sum(g[:, e].view(-1, 1, 1, 1) * (x * m.factor + m.shift)
               for e, m in enumerate(experts))


def test_two_experts_on_every_sample_are_summed() -> None:
    gates = [[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]]
    experts = [_Affine(2.0), _Affine(-1.0, 1.0)]
    x = _input()
    routed = RoutedExperts(experts, _Fixed(gates))
    torch.testing.assert_close(routed(x), _mixture(x, gates, experts))
    assert [e.calls for e in experts] == [3, 3]


def test_experts_serving_some_samples_only_see_those() -> None:
    """Expert 0 unused, 1 and 2 on two of three samples each, 3 on one: skipped experts do
    not end the loop, each expert's gate and result land on its own samples."""
    gates = [[0.0, 0.6, 0.4, 0.0], [0.0, 0.0, 0.3, 0.7], [0.0, 0.2, 0.0, 0.8]]
    experts = [_Affine(9.0), _Affine(2.0), _Affine(-1.0, 1.0), _Affine(0.5, -2.0)]
    x = _input()
    routed = RoutedExperts(experts, _Fixed(gates))
    torch.testing.assert_close(routed(x), _mixture(x, gates, experts))
    assert [e.calls for e in experts] == [0, 2, 2, 2]


def test_no_expert_chosen_gives_zeros_and_no_expert_at_all_the_input() -> None:
    x = _input()
    routed = RoutedExperts([_Affine(2.0)], _Fixed([[0.0]] * 3))
    assert torch.equal(routed(x), torch.zeros_like(x))
    empty = RoutedExperts([], _Fixed([[]] * 3))
    assert empty(x) is x


def test_the_routing_is_kept_and_contributions_are_measured_outside_training() -> None:
    """contribution[b, e] = |gate * (expert(x) - x)| / |x| for the sample's own x; inputs of
    norm under 1 are not clamped (only an all-zero one is)."""
    gates = [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.25, 0.75]]
    experts = [_Affine(2.0), _Affine(-1.0, 1.0), _Affine(0.5)]
    x = _input() / 100  # every sample's norm well under 1
    routed = RoutedExperts(experts, _Fixed(gates))
    assert routed.last_routing is None
    routed.train()
    routed(x)
    assert routed.last_routing is not None and routed.last_routing.contributions is None
    routed.eval()
    routed(x)
    routing = routed.last_routing
    assert torch.equal(routing.gates, torch.tensor(gates))
    expected = _expected_contributions(x, gates, experts)
    assert routing.contributions.dtype == torch.float32
    torch.testing.assert_close(routing.contributions, expected)


def test_a_bfloat16_input_stays_bfloat16_and_contributions_are_float32() -> None:
    x = _input().to(torch.bfloat16)
    routed = RoutedExperts([_Affine(2.0), _Affine(3.0)], _Fixed([[0.5, 0.5], [1.0, 0.0],
                                                                  [0.0, 1.0]])).eval()
    out = routed(x)
    assert out.dtype == torch.bfloat16
    assert routed.last_routing.contributions.dtype == torch.float32


def test_unlabelled_router_and_experts_are_named_by_position() -> None:
    x = torch.ones(2, 1, 2, 2)
    routed = RoutedExperts([_Affine(1.0), _Fails()], _Fixed([[1.0, 0.0], [0.5, 0.5]]))
    with pytest.raises(SeraError) as caught:
        routed(x)
    assert str(caught.value) == "expert 1 failed on input (1, 1, 2, 2): ValueError: boom"
    labelled = RoutedExperts([_Affine(1.0), _Fails()], _Fixed([[1.0, 0.0], [0.5, 0.5]]),
                             ("router 'r'", ["fusion expert 'a'", "fusion expert 'b'"]))
    with pytest.raises(SeraError) as caught:
        labelled(x)
    assert str(caught.value) == ("fusion expert 'b' failed on input (1, 1, 2, 2): "
                                 "ValueError: boom")
    broken = RoutedExperts([_Affine(1.0)], _Fails())  # type: ignore[arg-type]
    with pytest.raises(SeraError) as caught:
        broken(x)
    assert str(caught.value) == "router failed on input (2, 1, 2, 2): ValueError: boom"


def test_contributions_of_an_expert_on_every_sample_are_per_sample() -> None:
    """Expert 0 serves the whole batch (no gather): each sample's contribution still divides
    its own change by its own norm, not the batch's."""
    gates = [[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]]
    experts = [_Affine(2.0), _Affine(-1.0, 1.0)]
    x = _input()
    routed = RoutedExperts(experts, _Fixed(gates)).eval()
    routed(x)
    expected = _expected_contributions(x, gates, experts)
    torch.testing.assert_close(routed.last_routing.contributions, expected)
    # expert 0 doubles x: its change is x, so its contribution is its gate, |g x| / |x|
    assert torch.allclose(routed.last_routing.contributions[:, 0], torch.tensor(gates)[:, 0])
