"""What the optimizer sees when: the learning-rate schedule, the data order of each epoch, and
the parameter groups. Pure functions of the configuration, so a resumed run replays them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class EpochPlan:
    """Which samples each epoch draws, and so how many steps it takes: the first
    ``single_epochs`` epochs draw only ``single`` (the expressions naming exactly one object),
    the rest all ``n``. A model trained from scratch learns to tell the shapes apart on those
    first; with no-target expressions from the start it learned colours and never shapes
    (docs/performance.md, "Generalized data")."""

    n: int
    single: tuple[int, ...]
    single_epochs: int
    batch: int  # samples per step and process
    world: int = 1

    def steps_in(self, epoch: int) -> int:
        """Full batches of one epoch on each process; the remainder waits for the next."""
        drawn = len(self.single) if epoch < self.single_epochs else self.n
        return drawn // (self.batch * self.world)

    def total(self, epochs: int) -> int:
        return sum(self.steps_in(e) for e in range(epochs))

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, steps already taken in it) of the step about to be taken."""
        head = self.single_epochs * self.steps_in(0)
        if step < head:
            return divmod(step, self.steps_in(0))
        epoch, offset = divmod(step - head, self.steps_in(self.single_epochs))
        return self.single_epochs + epoch, offset

    def epochs_done(self, step: int) -> float:
        """Epochs completed after ``step`` steps, fractional within an epoch (for the logs)."""
        epoch, offset = self.locate(step)
        return epoch + offset / self.steps_in(epoch)

    def batches(self, epoch: int, seed: int, rank: int) -> list[list[int]]:
        """This rank's batches of ``epoch`` as sample indices (`epoch_batches` over its pool)."""
        pool: Sequence[int] = self.single if epoch < self.single_epochs else range(self.n)
        dealt = epoch_batches(len(pool), self.batch, self.steps_in(epoch), seed, epoch, rank,
                              self.world)
        return [[pool[i] for i in batch] for batch in dealt]


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
