"""What the optimizer sees when: the learning-rate schedule, the data order of each epoch, and
the parameter groups. Pure functions of the configuration, so a resumed run replays them."""

from __future__ import annotations

import math
from typing import Any

import torch

from sera_cli.config import TrainConfig


def epoch_batches(n: int, batch: int, steps: int, seed: int, epoch: int, rank: int,
                  world: int) -> list[list[int]]:
    """This rank's batches for one epoch: a permutation fixed by (seed, epoch), dealt round-robin
    across ranks, cut into ``steps`` full batches (the remainder waits for the next epoch)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g)[rank::world].tolist()
    return [order[i * batch:(i + 1) * batch] for i in range(steps)]


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then the chosen schedule."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = step / max(total, 1)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "step":
        return cfg.gamma ** sum(progress >= m for m in cfg.milestones)
    return 1.0


def optimizer_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Two groups of trainable parameters: the new modules at --lr, the tuned backbone
    parameters (biases and LayerNorms under --tune bias-ln) at --lr times --backbone-lr-mult."""
    from sera_cli.model.peft import backbones

    backbone_ids = {id(p) for b in backbones(model).values() for p in b.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in trainable if id(p) not in backbone_ids], "lr": cfg.lr},
        {"params": [p for p in trainable if id(p) in backbone_ids],
         "lr": cfg.lr * cfg.backbone_lr_mult},
    ]
