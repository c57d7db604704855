"""Everything about a run except the model, as a plain dataclass stored in config.json."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sera_cli.config.loader import from_dict
from sera_cli.errors import SeraError

SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
#: Probability threshold for a foreground pixel (the CRIS/DETRIS convention).
THRESHOLD_DEFAULT = 0.35


def check_threshold(value: float, option: str = "--threshold") -> float:
    """The one check of a mask threshold, wherever it enters (training, eval, predict)."""
    if not 0 < value < 1:
        raise SeraError(f"{option} must be between 0 and 1 (exclusive), got {value}")
    return value


@dataclass
class TrainConfig:
    """Stored in config.json under "train"; each field is the `sera train` option of its name."""

    data: str | None = None
    dataset: str = "synth"
    split_by: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    epochs: int = 65
    single_target_fraction: float = 0.0  # of the epochs, from the first: one-target samples only
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-4
    backbone_lr_mult: float = 1.0
    weight_decay: float = 0.0
    schedule: str = "step"
    milestones: list[float] = field(default_factory=lambda: [35 / 65, 55 / 65])
    gamma: float = 0.1
    warmup_steps: int = 0
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    workers: int = 0
    augment: bool = True
    skip_bad: bool = False
    log_every: int = 10
    save_every: int = 0
    val_every: int = 0
    val_batch_size: int = 32
    threshold: float = THRESHOLD_DEFAULT
    save_full: bool = False
    init_from: str | None = None  # a run whose weights start this one (backbones, and heads)
    init_heads: bool = True  # with init_from: also the adapters, experts, neck and decoder

    def validate(self) -> TrainConfig:
        for name in ("epochs", "batch_size", "val_batch_size", "log_every"):
            if getattr(self, name) <= 0:
                raise SeraError(f"--{name.replace('_', '-')} must be positive, got "
                                f"{getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SeraError(f"--lr must be a positive number, got {self.lr}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise SeraError(f"--max-steps must be positive, got {self.max_steps}")
        for name in ("workers", "save_every", "val_every", "warmup_steps", "weight_decay",
                     "grad_clip"):
            if getattr(self, name) < 0:
                raise SeraError(f"--{name.replace('_', '-')} must not be negative")
        if self.schedule not in SCHEDULES:
            raise SeraError(f"--schedule '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise SeraError(f"--precision '{self.precision}' is not one of "
                            f"{', '.join(PRECISIONS)}")
        if not 0 <= self.single_target_fraction < 1:
            raise SeraError("--single-target-fraction must be at least 0 and below 1, got "
                            f"{self.single_target_fraction}")
        check_threshold(self.threshold)
        return self

    @property
    def single_target_epochs(self) -> int:
        """The first epochs that draw only expressions naming exactly one object."""
        return math.floor(self.single_target_fraction * self.epochs + 1e-9)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, data, "train")
