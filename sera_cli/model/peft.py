"""Parameter-efficient tuning: which backbone parameters train.

``bias-ln`` (SERA's setting) trains every bias and LayerNorm parameter of both encoders and
freezes the rest; ``frozen`` (DETRIS) trains none; ``full`` trains all. New modules always train.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sera_cli.config import TUNE_MODES
from sera_cli.errors import SeraError


def backbones(model: nn.Module) -> dict[str, nn.Module]:
    """The pretrained encoders, by the prefix their parameters carry in the model."""
    return {"vision.dinov2": model.vision.dinov2, "text.tower": model.text.tower}


def _tunable_in_bias_ln(module: nn.Module) -> set[str]:
    names = set()
    for mod_name, mod in module.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if isinstance(mod, nn.LayerNorm) or p_name.endswith("bias"):
                names.add(full)
    return names


def apply_tuning(model: nn.Module, mode: str) -> None:
    if mode not in TUNE_MODES:
        raise SeraError(f"--tune '{mode}' is not one of {', '.join(TUNE_MODES)}")
    for p in model.parameters():
        p.requires_grad_(True)
    for backbone in backbones(model).values():
        keep = _tunable_in_bias_ln(backbone) if mode == "bias-ln" else set()
        for name, p in backbone.named_parameters():
            p.requires_grad_(mode == "full" or name in keep)


def parameter_counts(model: nn.Module) -> dict[str, Any]:
    """Totals that show the method's budget: trainable backbone share and new-module size."""
    backbone_ids = {id(p) for b in backbones(model).values() for p in b.parameters()}
    counts = {"backbone": 0, "backbone_trainable": 0, "new": 0, "total": 0, "trainable": 0}
    for p in model.parameters():
        n = p.numel()
        counts["total"] += n
        counts["trainable"] += n if p.requires_grad else 0
        if id(p) in backbone_ids:
            counts["backbone"] += n
            counts["backbone_trainable"] += n if p.requires_grad else 0
        else:
            counts["new"] += n
    counts["backbone_trainable_pct"] = 100.0 * counts["backbone_trainable"] / max(
        counts["backbone"], 1)
    return counts
