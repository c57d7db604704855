"""Mask metrics as the referring-segmentation literature reports them (DESIGN.md, "Metrics").

One sample is one (ref, sentence) pair. Per-sample IoU = |P and G| / |P or G|, and a sample whose
union is empty (nothing predicted, nothing there) counts as 1. mIoU averages per-sample IoUs,
oIoU divides the total intersection by the total union over the split, and Prec@X is the share of
samples with IoU >= X. Every figure is in percent. Masks are compared at the original image size,
after `unletterbox` and thresholding at `THRESHOLD_DEFAULT` (config/train.py) unless configured
otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PREC_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)


class _Tally:
    """Running sums for one group of samples (the whole split, or one expression type)."""

    def __init__(self) -> None:
        self.ious: list[float] = []
        self.inter = 0
        self.union = 0

    def add(self, inter: int, union: int, iou: float) -> None:
        self.ious.append(iou)
        self.inter += inter
        self.union += union

    def result(self) -> dict[str, Any]:
        n = len(self.ious)
        if n == 0:
            return {
                "n": 0,
                "miou": None,
                "oiou": None,
                **{f"prec@{t}": None for t in PREC_THRESHOLDS},
            }
        ious = np.asarray(self.ious)
        out: dict[str, Any] = {
            "n": n,
            "miou": 100.0 * float(ious.mean()),
            # all-empty split: the same convention as an empty union in one sample
            "oiou": 100.0 * self.inter / self.union if self.union else 100.0,
        }
        for t in PREC_THRESHOLDS:
            out[f"prec@{t}"] = 100.0 * float((ious >= t).mean())
        return out


def overlap(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixel counts of two bool masks of one shape."""
    if pred.dtype != np.bool_ or gt.dtype != np.bool_:
        raise TypeError(
            f"masks must be bool (threshold probabilities first), got {pred.dtype}, {gt.dtype}"
        )
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def sample_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """One sample's IoU in [0, 1]; an empty union (nothing predicted, nothing there) is 1."""
    inter, union = overlap(pred, gt)
    return inter / union if union else 1.0


class MaskScorer:
    """Accumulates binary predictions against ground truth and reports the standard metrics."""

    def __init__(self) -> None:
        self._all = _Tally()
        self._by_type: dict[str, _Tally] = {}

    def update(self, pred: np.ndarray, gt: np.ndarray, expr_type: str | None = None) -> float:
        """Add one sample (bool masks of one shape); returns its IoU in [0, 1]."""
        inter, union = overlap(pred, gt)
        iou = inter / union if union else 1.0
        self._all.add(inter, union, iou)
        if expr_type is not None:
            self._by_type.setdefault(expr_type, _Tally()).add(inter, union, iou)
        return iou

    def result(self) -> dict[str, Any]:
        """`miou`, `oiou`, `prec@0.5` ... `prec@0.9` in percent, `n`, and `by_type` when typed.

        With no samples the figures are None (no score), not 0.
        """
        out = self._all.result()
        if self._by_type:
            out["by_type"] = {t: self._by_type[t].result() for t in sorted(self._by_type)}
        return out
