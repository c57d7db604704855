"""Helpers shared by tests: tiny inputs, a tiny trainer, and environments for subprocesses.

Kept here, not in test files or conftest, so that no test module imports another."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sera_builtin
import torch

from sera_cli.config import ModelConfig
from sera_cli.registry import Registry, create_registry


def builtin_registry() -> Registry:
    """A fresh registry holding only the built-in plugin, whatever else is installed."""
    return create_registry(plugins=[sera_builtin], entry_points=False)


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


def make_trainer(run: Path, root: Path, reporter: Any = None, **options: Any) -> Any:
    """A sera-tiny Trainer on the CPU at batch 4, logging every step; ``options`` override."""
    from sera_cli.config.layering import build_configs
    from sera_cli.engine.training import Trainer

    values = {"preset": "sera-tiny", "data": str(root), "batch_size": 4, "log_every": 1,
              "val_batch_size": 8, "device": "cpu", **options}
    model_cfg, train_cfg = build_configs(values)
    return Trainer(model_cfg, train_cfg, run, root, registry=builtin_registry(),
                   reporter=reporter)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `sera` subprocess: built-in plugins only, no debug, and the cache
    and runs folders that the test session set up (never the user's)."""
    env = {**os.environ, "SERA_LOAD_PLUGINS": "builtin", "SERA_PLUGINS": "", "SERA_DEBUG": ""}
    return {**env, **extra}
