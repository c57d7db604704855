"""Hook specifications: how a plugin hands sera its experts and routers.

A plugin implements one or both hooks and calls ``register`` once per spec. Specs carry a lazy
factory (a callable or a ``"module:attr"`` string) so that listing plugins never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy

PROJECT = "sera"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Stage = Literal["adapter", "fusion"]
STAGES: tuple[str, ...] = ("adapter", "fusion")


def _resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ExpertSpec:
    """An expert: ``factory(channels)`` returns an ``nn.Module`` mapping (B, C, H, W) to the
    same shape, a refined copy of its input (input plus a residual refinement)."""

    name: str
    stage: Stage
    factory: Callable[..., Any] | str
    description: str
    plugin: str = field(default="", compare=False)

    def build(self, channels: int) -> Any:
        return _resolve(self.factory)(channels)


@dataclass(frozen=True)
class RouterSpec:
    """A router: ``factory(channels, num_experts, top_k)`` returns an ``nn.Module`` that maps a
    (B, C, H, W) map to a ``sera_cli.model.routing.Routing``: gates and logits, (B, E) each, or
    for a router of every position also its position gates, (B, E, H, W), with logits of that
    shape."""

    name: str
    factory: Callable[..., Any] | str
    description: str
    sparse: bool = False
    plugin: str = field(default="", compare=False)

    def build(self, channels: int, num_experts: int, top_k: int) -> Any:
        return _resolve(self.factory)(channels, num_experts, top_k)


@hookspec
def sera_register_experts(register: Callable[[ExpertSpec], None]) -> None:
    """Register experts by calling ``register(ExpertSpec(...))`` once for each."""


@hookspec
def sera_register_routers(register: Callable[[RouterSpec], None]) -> None:
    """Register routers by calling ``register(RouterSpec(...))`` once for each."""
