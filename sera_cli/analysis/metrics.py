"""Mask metrics under each evaluation protocol of the referring-segmentation literature.

The field's code bases score the same masks differently (docs/metrics.md puts them side by side):

- ``sera`` (the default, docs/metrics.md): p >= threshold at the original size; IoU =
  I / U, an empty union counts 1; mIoU, oIoU = sum I / sum U, Prec@X = share with IoU >= X.
- ``cris`` (CRIS and DETRIS, ``engine/engine.py``): p > threshold at the original size; IoU =
  I / (U + 1e-6), so an empty union counts 0 and an IoU of exactly X falls below X; mIoU and
  Prec@X = share with IoU > X; no oIoU.
- ``lavt`` (LAVT, ``test.py``): ground truth resized to 480 x 480 (nearest), the prediction
  thresholded there (p > threshold, the argmax of two logits); IoU 0 when U = 0; mIoU, oIoU,
  Prec@X with >=.
- ``rela`` (ReLA, gRefCOCO, ``refer_evaluation.py``): a sample whose ground truth is empty names
  nothing; the model says "no target" by its no-target head (an empty mask for a model without
  one). A correct no-target scores IoU 1 and adds nothing to sum I, sum U; a missed one scores 0
  and adds its U; a false no-target on a real target sets I to 0. gIoU = mean IoU, cIoU = sum I
  / sum U, Pr@0.7/0.8/0.9 over targeted samples (>=), N-acc = TP / (TP + FN) over no-target
  samples, T-acc = TN / (TN + FP) over targeted ones.

Every figure is in percent; a figure with nothing to count (no samples, no targeted samples, a
zero denominator a protocol would divide by) is None, not 0. Masks come in at the original image
size, after `unletterbox`, as probabilities (a bool mask reads as probabilities 0 and 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sera_cli.config import THRESHOLD_DEFAULT

PREC_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
RELA_PREC_THRESHOLDS: tuple[float, ...] = (0.7, 0.8, 0.9)
LAVT_SIZE = 480  # LAVT's test transform resizes image and ground truth to 480 x 480
CRIS_EPS = 1e-6  # CRIS/DETRIS: iou = sum(inter) / (sum(union) + 1e-6)
#: The no-target head's probability from which a model says an expression names nothing (ReLA
#: takes the argmax of two logits: the same as 0.5 for one).
NO_TARGET_THRESHOLD = 0.5


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
    """One sample's IoU in [0, 1] under the sera protocol; an empty union is 1."""
    inter, union = overlap(pred, gt)
    return inter / union if union else 1.0


def says_no_target(no_target_prob: float | None, mask: np.ndarray) -> bool:
    """Whether the model answers "names nothing": its no-target head says so, or, for a model
    without the head (None), its mask is empty."""
    return not mask.any() if no_target_prob is None else no_target_prob >= NO_TARGET_THRESHOLD


def decide(mask: np.ndarray, no_target_prob: float | None) -> tuple[np.ndarray, bool]:
    """The model's answer from its thresholded mask and its no-target head's probability:
    (the mask, emptied when the model says the expression names nothing; whether it says so).
    Evaluation, `sera predict` and the saved masks all answer by this one rule."""
    said = says_no_target(no_target_prob, mask)
    return (np.zeros_like(mask) if said else mask), said


@dataclass(frozen=True)
class Sample:
    """One scored sample: what a protocol's figures are summed from."""

    inter: int  # as the protocol counts it (ReLA: 0 for a false no-target)
    union: int
    iou: float
    no_target: bool  # the ground truth names nothing (its mask is empty)
    said_no_target: bool  # the model answered "names nothing"


def _pct(numerator: float, denominator: float) -> float | None:
    return 100.0 * numerator / denominator if denominator else None


class Protocol:
    """How one code base turns probabilities into samples and samples into figures. This base
    class is the sera protocol; each subclass changes what its source does differently."""

    name = "sera"
    source = "sera, docs/metrics.md"
    strict = False  # foreground is p > threshold rather than p >= threshold
    prec_strict = False  # Prec@X counts IoU > X rather than IoU >= X
    prec_thresholds = PREC_THRESHOLDS

    def figures(self) -> list[str]:
        """The figures of a result, in table order."""
        return ["miou", "oiou", *(f"prec@{t}" for t in self.prec_thresholds)]

    def frame(self, prob: np.ndarray, gt: np.ndarray,
              threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, ground truth) as bool masks in the frame the protocol scores in."""
        return (prob > threshold if self.strict else prob >= threshold), gt

    def iou(self, inter: int, union: int) -> float:
        return inter / union if union else 1.0

    def sample(self, prob: np.ndarray, gt: np.ndarray, threshold: float,
               no_target_prob: float | None) -> Sample:
        """Score one sample; a model's "no target" empties its prediction."""
        pred, gt = self.frame(prob, gt, threshold)
        pred, said = decide(pred, no_target_prob)
        inter, union = overlap(pred, gt)
        return Sample(inter, union, self.iou(inter, union), not gt.any(), said)

    def oiou(self, inter: int, union: int) -> float | None:
        # a split where every union is empty: the same convention as one such sample
        return 100.0 * inter / union if union else 100.0

    def precision(self, ious: np.ndarray) -> dict[str, float | None]:
        hits = (ious > t if self.prec_strict else ious >= t for t in self.prec_thresholds)
        return {f"prec@{t}": 100.0 * float(h.mean()) if ious.size else None
                for t, h in zip(self.prec_thresholds, hits, strict=True)}

    def summarize(self, samples: list[Sample]) -> dict[str, Any]:
        """The protocol's figures (percent) over ``samples``, with ``n``."""
        if not samples:
            return {"n": 0, **dict.fromkeys(self.figures())}
        ious = np.asarray([s.iou for s in samples])
        out = {"n": len(samples), "miou": 100.0 * float(ious.mean()),
               "oiou": self.oiou(sum(s.inter for s in samples), sum(s.union for s in samples)),
               **self.precision(ious)}
        return {"n": out["n"], **{k: out[k] for k in self.figures()}}


class CrisProtocol(Protocol):
    name = "cris"
    source = "CRIS.pytorch and DETRIS, engine/engine.py (inference)"
    strict = True  # np.array(pred > 0.35)
    prec_strict = True  # (iou_list > thres).float().mean()

    def figures(self) -> list[str]:
        return ["miou", *(f"prec@{t}" for t in self.prec_thresholds)]

    def iou(self, inter: int, union: int) -> float:
        return inter / (union + CRIS_EPS)


class LavtProtocol(Protocol):
    name = "lavt"
    source = "LAVT-RIS, test.py (evaluate) and transforms.Resize(480, 480)"
    strict = True  # output.argmax(1): the background wins a tie

    def frame(self, prob: np.ndarray, gt: np.ndarray,
              threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Both at 480 x 480, aspect ratio not kept: the ground truth by PIL's nearest resize
        (as LAVT's transform), the probabilities bilinearly (as LAVT upsamples its logits)."""
        import torch
        import torch.nn.functional as F
        from PIL import Image

        size = (LAVT_SIZE, LAVT_SIZE)
        gt480 = np.asarray(Image.fromarray(gt.astype(np.uint8)).resize(size, Image.NEAREST)) > 0
        p = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None, None]
        p480 = F.interpolate(p, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
        return p480 > threshold, gt480

    def iou(self, inter: int, union: int) -> float:
        return inter / union if union else 0.0

    def oiou(self, inter: int, union: int) -> float | None:
        return _pct(inter, union)  # LAVT divides by the union, whatever it is


class RelaProtocol(Protocol):
    name = "rela"
    source = "ReLA, gres_model/evaluation/refer_evaluation.py"
    strict = True  # output["ref_seg"].argmax(dim=0)
    prec_thresholds = RELA_PREC_THRESHOLDS

    def figures(self) -> list[str]:
        return ["giou", "ciou", *(f"prec@{t}" for t in self.prec_thresholds), "n_acc", "t_acc"]

    def sample(self, prob: np.ndarray, gt: np.ndarray, threshold: float,
               no_target_prob: float | None) -> Sample:
        """The mask is scored as the mask head gave it; "no target" counts on its own."""
        pred, gt = self.frame(prob, gt, threshold)
        said = says_no_target(no_target_prob, pred)
        inter, union = overlap(pred, gt)
        if not gt.any():  # no-target sample: right (TP) scores 1, wrong (FN) 0 and adds its U
            return Sample(0, 0 if said else union, 1.0 if said else 0.0, True, said)
        if said:  # false no-target (FP): its intersection does not count
            inter = 0
        return Sample(inter, union, inter / union, False, said)

    def summarize(self, samples: list[Sample]) -> dict[str, Any]:
        if not samples:
            return {"n": 0, **dict.fromkeys(self.figures())}
        targeted = [s for s in samples if not s.no_target]
        empty = [s for s in samples if s.no_target]
        return {
            "n": len(samples),
            "giou": 100.0 * float(np.mean([s.iou for s in samples])),
            "ciou": _pct(sum(s.inter for s in samples), sum(s.union for s in samples)),
            **self.precision(np.asarray([s.iou for s in targeted])),
            "n_acc": _pct(sum(s.said_no_target for s in empty), len(empty)),
            "t_acc": _pct(sum(not s.said_no_target for s in targeted), len(targeted)),
        }


PROTOCOLS: dict[str, Protocol] = {
    p.name: p for p in (Protocol(), CrisProtocol(), LavtProtocol(), RelaProtocol())}
DEFAULT_PROTOCOL = "sera"


def protocol_named(name: str) -> Protocol:
    """The protocol of that name, or SeraError listing the known ones."""
    from sera_cli.errors import SeraError

    if name not in PROTOCOLS:
        raise SeraError(f"--protocol '{name}' is not one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


class MaskScorer:
    """Accumulates predictions against ground truth and reports one protocol's figures, over
    the split and per expression type."""

    def __init__(self, protocol: str = DEFAULT_PROTOCOL,
                 threshold: float = THRESHOLD_DEFAULT) -> None:
        self.protocol = protocol_named(protocol)
        self.threshold = threshold
        self._all: list[Sample] = []
        self._by_type: dict[str, list[Sample]] = {}

    def update(self, prob: np.ndarray, gt: np.ndarray, expr_type: str | None = None,
               no_target_prob: float | None = None) -> float:
        """Add one sample: (H, W) probabilities (or a bool mask) and the bool ground truth at the
        original size, and the no-target head's probability (None for a model without one).
        Returns the sample's IoU in [0, 1] under the protocol."""
        if gt.dtype != np.bool_:
            raise TypeError(f"the ground truth must be a bool mask, got {gt.dtype}")
        scored = self.protocol.sample(prob, gt, self.threshold, no_target_prob)
        self._all.append(scored)
        if expr_type is not None:
            self._by_type.setdefault(expr_type, []).append(scored)
        return scored.iou

    def result(self) -> dict[str, Any]:
        """``protocol``, ``n`` and the protocol's figures in percent (sera: ``miou``, ``oiou``,
        ``prec@0.5`` ... ``prec@0.9``), and ``by_type`` when typed. With no samples the figures
        are None (no score), not 0."""
        out = {"protocol": self.protocol.name, **self.protocol.summarize(self._all)}
        if self._by_type:
            out["by_type"] = {t: self.protocol.summarize(self._by_type[t])
                              for t in sorted(self._by_type)}
        return out
