"""Expert diagnostics: each expert's relative contribution and the routing entropy, so that an
expert that stays near identity, or a router that spreads evenly, is visible at a glance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sera_cli.analysis.routing import RoutingStats, gate_entropy
from sera_cli.analysis.tables import routing_table
from sera_cli.model.routing import RoutedExperts, Routing


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor  # x + (factor - 1) x: changes its input by |factor - 1|


class _Fixed(nn.Module):
    def __init__(self, gates: torch.Tensor) -> None:
        super().__init__()
        self.gates = gates

    def forward(self, x: torch.Tensor) -> Routing:
        return Routing(gates=self.gates, logits=torch.zeros_like(self.gates))


def test_contribution_is_gate_times_change_over_input() -> None:
    gates = torch.tensor([[0.25, 0.75, 0.0], [0.0, 0.5, 0.5]])
    routed = RoutedExperts([_Scale(1.0), _Scale(3.0), _Scale(0.5)], _Fixed(gates)).eval()
    routed(torch.randn(2, 4, 3, 3))
    contributions = routed.last_routing.contributions
    expected = torch.tensor([[0.25 * 0.0, 0.75 * 2.0, 0.0], [0.0, 0.5 * 2.0, 0.5 * 0.5]])
    assert torch.allclose(contributions, expected, atol=1e-6)
    routed.train()
    routed(torch.randn(2, 4, 3, 3))
    assert routed.last_routing.contributions is None  # no cost while training


def test_entropy_and_contributions_per_type() -> None:
    assert np.allclose(gate_entropy(np.array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])),
                       [1.0, 0.0, -(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75))])
    stats = RoutingStats()
    routing = Routing(gates=torch.tensor([[0.5, 0.5], [1.0, 0.0]]), logits=torch.zeros(2, 2),
                      contributions=torch.tensor([[0.2, 0.4], [0.6, 0.0]]))
    stats.update({"fusion": routing}, ["spatial", "appearance"])
    result = stats.result(lambda router: ["a", "b"])
    assert result["fusion"]["all"]["a"]["contribution"] == pytest.approx(0.4)
    assert result["fusion"]["spatial"]["b"]["contribution"] == pytest.approx(0.4)
    assert stats.entropy() == {"fusion": {"all": 0.5, "appearance": 0.0, "spatial": 1.0}}
    table = routing_table("val", result["fusion"], stats.entropy()["fusion"])
    assert [c.header for c in table.columns] == ["expressions", "a", "b", "entropy (bits)"]
