"""Configuration, torch-free: model and training dataclasses, one strict loader, presets as data
and the layering of a run's values (preset < --config file < command line)."""

from sera_cli.config.model import (
    CLIP_MEAN,
    CLIP_STD,
    TUNE_MODES,
    LossConfig,
    ModelConfig,
    PluginUse,
    TextConfig,
    VisionConfig,
)
from sera_cli.config.presets import preset, preset_names, train_defaults
from sera_cli.config.train import THRESHOLD_DEFAULT, TrainConfig, check_threshold

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "THRESHOLD_DEFAULT", "TUNE_MODES", "LossConfig", "ModelConfig",
    "PluginUse", "TextConfig", "TrainConfig", "VisionConfig", "check_threshold", "preset",
    "preset_names", "train_defaults",
]
