"""Routing statistics: how each router used its experts, per expression type.

`RoutingStats` accumulates, while a split is evaluated, each expert's mean gate weight and how
often it was among the selected (top-k) experts, per router and expression type; the helpers
below order that result for the tables (`tables.py`), the heat map (`heatmap.py`) and the
report (`report.py`), so that a user sees whether the spatial expert takes the spatial
expressions.

The input is ``result["routing"]``: ``{router: {type or "all": {expert: {"gate": %,
"selected": %}}}}``. Routers are "fusion" and "adapter.<block>".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

ALL = "all"
FUSION = "fusion"

ByType = dict[str, dict[str, dict[str, float]]]


def router_order(routing: dict[str, ByType]) -> list[str]:
    """SERA-Fusion first (the sparse router the paper analyses), then adapters by block."""

    def key(name: str) -> tuple[int, int, str]:
        block = name.rpartition(".")[2]
        return (name != FUSION, int(block) if block.isdigit() else 0, name)

    return sorted(routing, key=key)


def type_order(by_type: ByType) -> list[str]:
    """"all" first, then each expression type in alphabetical order."""
    return [ALL, *sorted(t for t in by_type if t != ALL)] if ALL in by_type else sorted(by_type)


def grid(by_type: ByType, metric: str) -> tuple[list[str], list[str], list[list[float]]]:
    """(row labels, expert names, values[row][expert]) for "gate", "selected" or "lift" (the
    gate of a type minus the gate over all expressions, in percentage points)."""
    rows = type_order(by_type)
    experts = list(by_type[rows[0]])
    if metric == "lift":
        base = by_type[ALL]
        values = [[by_type[t][e]["gate"] - base[e]["gate"] for e in experts] for t in rows]
    else:
        values = [[by_type[t][e][metric] for e in experts] for t in rows]
    return rows, experts, values


def expert_names(model: Any, router: str) -> list[str]:
    """Names of the experts behind a router key ("fusion" or "adapter.<block>")."""
    cfg = model.cfg
    return list(cfg.experts if router == "fusion" else cfg.adapter_experts)


class RoutingStats:
    """Mean gate weight and selection rate of each expert, per router and expression type."""

    def __init__(self) -> None:
        # (router, type) -> [sum of gates (E,), times selected (E,), sum of contributions (E,),
        #                    sum of gate entropies, samples]
        self._sums: dict[tuple[str, str], list[Any]] = {}

    def update(self, routings: dict[str, Any], types: list[str | None]) -> None:
        for router, routing in routings.items():
            gates = routing.gates.detach().float().cpu().numpy()
            contributions = (np.zeros_like(gates) if routing.contributions is None
                             else routing.contributions.detach().float().cpu().numpy())
            entropies = gate_entropy(gates)
            for row, contrib, entropy, expr_type in zip(gates, contributions, entropies, types,
                                                        strict=True):
                for key in ("all", expr_type):
                    if key is None:
                        continue
                    acc = self._sums.setdefault((router, key), [
                        np.zeros_like(row), np.zeros_like(row), np.zeros_like(row), 0.0, 0])
                    acc[0] += row
                    acc[1] += row > 0
                    acc[2] += contrib
                    acc[3] += float(entropy)
                    acc[4] += 1

    def result(self, names: Callable[[str], list[str]]) -> dict[str, Any]:
        """{router: {type: {expert: {"gate": mean weight, "selected": rate (both percent),
        "contribution": mean |gate * (expert(x) - x)| / |x|}}}}."""
        out: dict[str, Any] = defaultdict(dict)
        for (router, expr_type), (gate_sum, chosen, contrib, _, n) in sorted(self._sums.items()):
            out[router][expr_type] = {
                name: {"gate": 100.0 * float(g) / n, "selected": 100.0 * float(c) / n,
                       "contribution": float(d) / n}
                for name, g, c, d in zip(names(router), gate_sum, chosen, contrib, strict=True)
            }
        return dict(out)

    def entropy(self) -> dict[str, dict[str, float]]:
        """{router: {type: mean routing entropy}}, in bits: 0 when every sample goes to one
        expert, log2(E) when every sample spreads evenly over all E."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (router, expr_type), (*_, entropy_sum, n) in sorted(self._sums.items()):
            out[router][expr_type] = entropy_sum / n
        return dict(out)


def gate_entropy(gates: np.ndarray) -> np.ndarray:
    """Entropy in bits of each row of (B, E) gates; zero gates add nothing."""
    safe = np.where(gates > 0, gates, 1.0)
    return -(gates * np.log2(safe)).sum(axis=1)
