"""Fixtures for model tests: the built-in plugin on a fresh registry, and tiny configs."""

from __future__ import annotations

import pytest
import sera_builtin
import torch

from sera_cli.config import ModelConfig, preset
from sera_cli.registry import Registry, create_registry


@pytest.fixture
def builtin_registry() -> Registry:
    return create_registry(plugins=[sera_builtin], entry_points=False)


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return preset("sera-tiny")


def tiny_inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """Random pixels and word ids with an end-of-text token and padding, like real tokens."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.randint(1, 49000, (batch, cfg.text.context_length), generator=g)
    for i in range(batch):
        end = 3 + i
        ids[i, end] = 49407
        ids[i, end + 1:] = 0
    return pixels, ids
