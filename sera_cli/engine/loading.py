"""A trained run loaded for use: the model on its device, in its precision, and the threshold
to apply.

Prediction, evaluation, routing statistics and the demo all start from one, so a run is read,
checked and placed on a device in exactly one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sera_cli.config import THRESHOLD_DEFAULT, check_threshold
from sera_cli.engine.devices import lower, resolve_device, resolve_precision


@dataclass
class LoadedRun:
    path: Path
    model: Any  # SeraModel, in eval mode on ``device``, its weights in ``precision``
    config: dict[str, Any]  # the run's config.json
    device: torch.device
    threshold: float  # the one asked for, else the run's own, else 0.35
    precision: str = "fp32"  # fp32 or bf16, as resolved from --precision


def open_run(run: Path, device: str = "cpu", threshold: float | None = None,
             vision_weights: str | None = None, text_weights: str | None = None,
             precision: str = "auto") -> LoadedRun:
    """Load ``run`` (a run folder) onto ``device``; ``threshold`` None keeps the run's own;
    ``precision`` auto is bf16 where the device multiplies it fast (``resolve_precision``)."""
    from sera_cli.runs.checkpoints import load_run

    if threshold is not None:
        check_threshold(threshold)
    resolved = resolve_device(device)  # before the load: a bad name fails at once
    precision = resolve_precision(precision, resolved)
    model, config = load_run(run, vision_weights=vision_weights, text_weights=text_weights)
    return _placed(Path(run), model, config, resolved, threshold, precision)


def open_pretrained(path_or_repo_id: str | Path, device: str = "cpu",
                    threshold: float | None = None, precision: str = "auto",
                    **kwargs: Any) -> LoadedRun:
    """``open_run`` for a run folder or a hub repository id, through
    ``SeraModel.from_pretrained`` (``kwargs`` are its: backbone weights, revision, token...)."""
    from sera_cli.runs.pretrained import SeraModel

    if threshold is not None:
        check_threshold(threshold)
    resolved = resolve_device(device)
    precision = resolve_precision(precision, resolved)
    model = SeraModel.from_pretrained(path_or_repo_id, **kwargs)
    return _placed(model.run_folder, model, model.run_config, resolved, threshold, precision)


def _placed(path: Path, model: Any, config: dict[str, Any], device: torch.device,
            threshold: float | None, precision: str) -> LoadedRun:
    lower(model.to(device).eval(), precision)
    if threshold is None:
        threshold = config.get("train", {}).get("threshold", THRESHOLD_DEFAULT)
    return LoadedRun(path, model, config, device, threshold, precision)
