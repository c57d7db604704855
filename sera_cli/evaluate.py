"""Scoring a model on a split as the RIS literature does, with routing statistics beside it.

Every (ref, sentence) pair counts; probabilities go back to the original image size through the
exact letterbox inverse before thresholding (DESIGN.md "Metrics").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from sera_cli.data.dataset import ReferDataset, collate
from sera_cli.data.transforms import unletterbox
from sera_cli.metrics import MaskScorer, threshold_default
from sera_cli.model.sera import SeraModel


def expert_names(model: SeraModel, router: str) -> list[str]:
    """Names of the experts behind a router key ("fusion" or "adapter.<block>")."""
    cfg = model.cfg
    return list(cfg.fusion_experts if router == "fusion" else cfg.adapter_experts)


class RoutingStats:
    """Mean gate weight and selection rate of each expert, per router and expression type."""

    def __init__(self) -> None:
        # (router, type) -> [sum of gates (E,), times selected (E,), samples]
        self._sums: dict[tuple[str, str], list[Any]] = {}

    def update(self, routings: dict[str, Any], types: list[str | None]) -> None:
        for router, routing in routings.items():
            gates = routing.gates.detach().float().cpu().numpy()
            for row, expr_type in zip(gates, types, strict=True):
                for key in ("all", expr_type):
                    if key is None:
                        continue
                    acc = self._sums.setdefault((router, key),
                                                [np.zeros_like(row), np.zeros_like(row), 0])
                    acc[0] += row
                    acc[1] += row > 0
                    acc[2] += 1

    def result(self, names: Callable[[str], list[str]]) -> dict[str, Any]:
        """{router: {type: {expert: {"gate": mean weight, "selected": rate}}}}, in percent."""
        out: dict[str, Any] = defaultdict(dict)
        for (router, expr_type), (gate_sum, chosen, n) in sorted(self._sums.items()):
            out[router][expr_type] = {
                name: {"gate": 100.0 * float(g) / n, "selected": 100.0 * float(c) / n}
                for name, g, c in zip(names(router), gate_sum, chosen, strict=True)
            }
        return dict(out)


def autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast on CUDA when asked; float32 elsewhere."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate(model: SeraModel, dataset: ReferDataset, *, batch_size: int = 16,
             threshold: float = threshold_default, device: torch.device | str = "cpu",
             precision: str = "fp32", workers: int = 0, save_masks: Path | None = None,
             on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Metrics (percent) and routing statistics of ``model`` over every sample of ``dataset``."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    scorer, routing = MaskScorer(), RoutingStats()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate)
    if save_masks is not None:
        (save_masks / dataset.split).mkdir(parents=True, exist_ok=True)
    for batch in loader:
        with autocast(device, precision):
            out = model(batch["image"].to(device), batch["words"].to(device))
        probs = torch.sigmoid(out.logits.float()).cpu()
        metas = [dataset.meta(int(i)) for i in batch["index"]]
        for prob, meta in zip(probs, metas, strict=True):
            pred = (unletterbox(prob[0], meta.letterbox) >= threshold).numpy()
            scorer.update(pred, dataset.index.mask(meta.sample), meta.sample.expr_type)
            if save_masks is not None:
                _write_mask(save_masks / dataset.split /
                            f"{meta.sample.ref_id}_{meta.sample.sent_id}.png", pred)
        routing.update(out.routings, [m.sample.expr_type for m in metas])
        if on_batch is not None:
            on_batch(len(metas))
    model.train(was_training)
    return {"split": dataset.split, "threshold": threshold, **scorer.result(),
            "routing": routing.result(lambda r: expert_names(model, r))}


def _write_mask(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
