"""Routing on the expression (``sentence_routing``): the routers see the sentence, the experts do
not; off, the paper's routers see pooled visual features only, so one image routes alike for
every expression at the adapters."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import tiny_inputs
from torch import nn

from sera_cli.config import ModelConfig
from sera_cli.config.layering import build_configs
from sera_cli.errors import SeraError
from sera_cli.model.routing import RoutedExperts, Routing
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry


def _gates_for_two_expressions(cfg: ModelConfig, registry: Registry) -> dict[str, torch.Tensor]:
    """Per routed stage: the gates of one image under two different expressions, (2, E)."""
    torch.manual_seed(0)
    model = build_model(cfg, registry).eval()
    for module in model.modules():  # experts apart from the identity, so the maps differ too
        if isinstance(module, RoutedExperts):
            for p in module.experts.parameters():
                nn.init.normal_(p, std=0.1)
    pixels, ids = tiny_inputs(cfg, batch=2)
    pixels = pixels[:1].expand(2, -1, -1, -1)
    assert not torch.equal(ids[0], ids[1])
    with torch.no_grad():
        out = model(pixels, ids)
    return {stage: r.gates for stage, r in out.routings.items()}


def test_paper_routers_give_one_image_the_same_adapter_gates_whatever_the_expression(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    gates = _gates_for_two_expressions(tiny_cfg, builtin_registry)
    for stage in ("adapter.2", "adapter.4"):
        torch.testing.assert_close(gates[stage][0], gates[stage][1])


def test_sentence_routing_gives_each_expression_its_own_gates_at_every_stage(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    cfg = dataclasses.replace(tiny_cfg, sentence_routing=True)
    gates = _gates_for_two_expressions(cfg, builtin_registry)
    assert set(gates) == {"adapter.2", "adapter.4", "fusion"}
    for stage, g in gates.items():
        assert (g[0] - g[1]).abs().max() > 1e-4, stage


def test_sentence_routing_adds_one_projection_per_routed_stage_and_no_other_weight(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    plain = build_model(tiny_cfg, builtin_registry).state_dict()
    routed = build_model(dataclasses.replace(tiny_cfg, sentence_routing=True),
                         builtin_registry).state_dict()
    added = sorted(set(routed) - set(plain))
    assert set(plain) <= set(routed)
    assert added == [f"{stage}.condition.{p}" for stage in
                     ("fusion", "vision.adapters.2.experts", "vision.adapters.4.experts")
                     for p in ("bias", "weight")]
    # sentence width -> stage width: the CLIP sentence at the adapters, the projected one at fusion
    assert routed["vision.adapters.2.experts.condition.weight"].shape == (
        tiny_cfg.adapter_dim, tiny_cfg.text.output_dim)
    assert routed["fusion.condition.weight"].shape == (tiny_cfg.fusion_dim, tiny_cfg.fusion_dim)


def test_a_stage_without_experts_gets_no_projection(tiny_cfg: ModelConfig,
                                                    builtin_registry: Registry) -> None:
    cfg = dataclasses.replace(tiny_cfg, sentence_routing=True, experts=[], adapter_experts=[])
    assert not [k for k in build_model(cfg, builtin_registry).state_dict() if "condition" in k]


class _Seen(nn.Module):
    """Records its input; as a router, routes everything to expert 0."""

    def __init__(self, route: bool = False) -> None:
        super().__init__()
        self.route, self.seen = route, None

    def forward(self, x: torch.Tensor) -> torch.Tensor | Routing:
        self.seen = x
        if self.route:
            gates = torch.zeros(x.shape[0], 1)
            gates[:, 0] = 1.0
            return Routing(gates=gates, logits=gates)
        return x


def test_the_router_sees_the_map_plus_the_projected_expression_the_expert_the_map_alone() -> None:
    router, expert = _Seen(route=True), _Seen()
    condition = nn.Linear(3, 4)
    stage = RoutedExperts([expert], router, condition=condition)
    x, expression = torch.randn(2, 4, 3, 3), torch.randn(2, 3)
    out = stage(x, expression)
    torch.testing.assert_close(expert.seen, x)
    torch.testing.assert_close(out, x)
    torch.testing.assert_close(router.seen, x + condition(expression)[:, :, None, None])


def test_a_stage_that_routes_on_the_expression_refuses_to_run_without_one() -> None:
    stage = RoutedExperts([_Seen()], _Seen(route=True), ("router 'r'", ["expert 'e'"]),
                          condition=nn.Linear(3, 4))
    with pytest.raises(SeraError, match="router 'r' routes on the expression, but none was given"):
        stage(torch.randn(2, 4, 3, 3))


def test_sentence_routing_is_an_option_and_off_by_default() -> None:
    assert build_configs({"preset": "sera-tiny"})[0].sentence_routing is False
    assert build_configs({"preset": "sera-tiny", "sentence_routing": True})[0].sentence_routing
    with pytest.raises(SeraError, match="--sentence-routing"):
        build_configs({"preset": "sera-tiny", "sentence_routing": "maybe"})


def test_the_projections_train_under_bias_ln(tiny_cfg: ModelConfig,
                                             builtin_registry: Registry) -> None:
    """New modules, like the experts: the paper's regime freezes only the backbones."""
    cfg = dataclasses.replace(tiny_cfg, sentence_routing=True, tune="bias-ln")
    trained = {n: p.requires_grad for n, p in build_model(cfg, builtin_registry).named_parameters()
               if ".condition." in n}
    assert len(trained) == 6 and all(trained.values())
