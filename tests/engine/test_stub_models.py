"""Evaluation and prediction of stub models whose masks are known: the ground truth scores 100
(up to resampling at the letterbox's edges), an empty prediction 0, a left-half mask comes back
as the left half of the image."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from sera_cli.config import preset
from sera_cli.data.dataset import dataset_for
from sera_cli.data.refer import ReferIndex
from sera_cli.engine.evaluation import evaluate
from sera_cli.engine.inference import Predictor
from sera_cli.model.sera import SeraOutput


class _Replay(nn.Module):
    """Returns the given (B, S, S) masks as confident logits, batch after batch, in order."""

    def __init__(self, masks: list[torch.Tensor], sign: float = 1.0) -> None:
        super().__init__()
        self.masks, self.sign, self.at = masks, sign, 0
        self.weight = nn.Parameter(torch.zeros(()))  # float32, as a real model's

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> SeraOutput:
        batch = torch.stack(self.masks[self.at:self.at + pixels.shape[0]])
        self.at += pixels.shape[0]
        logits = (batch * 2 - 1) * 20 if self.sign > 0 else torch.full_like(batch, -20.0)
        return SeraOutput(logits=logits[:, None], routings={})


def test_ground_truth_scores_100_and_an_empty_prediction_0(synth_data_root: Path) -> None:
    cfg = preset("sera-tiny")
    ds = dataset_for(cfg, ReferIndex.load(synth_data_root, "synth"), "val")
    masks = [ds[i]["mask"] for i in range(len(ds))]
    truth = evaluate(_Replay(masks), ds, batch_size=3)  # type: ignore[arg-type]
    assert truth["n"] == len(ds) > 0
    assert truth["miou"] > 95 and truth["oiou"] > 95 and truth["prec@0.5"] == 100.0
    empty = evaluate(_Replay(masks, sign=-1), ds, batch_size=3)  # type: ignore[arg-type]
    assert empty["miou"] == 0.0 and empty["oiou"] == 0.0 and empty["prec@0.5"] == 0.0


class _LeftHalf(nn.Module):
    def __init__(self, cfg: object) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> SeraOutput:
        s = pixels.shape[-1]
        logits = torch.full((pixels.shape[0], 1, s // 4, s // 4), -20.0)
        logits[..., : s // 8] = 20.0  # the left half of the model input
        return SeraOutput(logits=logits, routings={})


def test_predict_puts_a_known_mask_back_on_the_image(trained_run: Path, tmp_path: Path) -> None:
    predictor = Predictor(trained_run)
    predictor.model = _LeftHalf(predictor.model.cfg)  # type: ignore[assignment]
    path = tmp_path / "square.png"
    Image.new("RGB", (90, 90), (30, 60, 90)).save(path)  # a square fills the whole input
    prediction = predictor(path, "the left one")
    assert prediction.mask.shape == (90, 90)
    assert prediction.mask[:, :43].all() and not prediction.mask[:, 47:].any()
    assert prediction.summary()["box"][0] == 0 and prediction.summary()["area"] in range(
        43 * 90, 47 * 90 + 1)


class _Ramp(nn.Module):
    """Probabilities rising from 0 at the left edge to 1 at the right, whatever the input."""

    def __init__(self, cfg: object) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> SeraOutput:
        s = pixels.shape[-1] // 4
        p = torch.linspace(0.001, 0.999, s).clamp(1e-4, 1 - 1e-4).expand(pixels.shape[0], 1, s, s)
        return SeraOutput(logits=torch.logit(p), routings={})


def test_a_threshold_given_per_call_applies_to_that_call_only(trained_run: Path,
                                                              tmp_path: Path) -> None:
    predictor = Predictor(trained_run)
    own = predictor.threshold
    predictor.model = _Ramp(predictor.model.cfg)  # type: ignore[assignment]
    path = tmp_path / "square.png"
    Image.new("RGB", (64, 64), (30, 60, 90)).save(path)
    strict, lax = predictor(path, "x", threshold=0.9), predictor(path, "x", threshold=0.1)
    assert 0 < strict.mask.sum() < lax.mask.sum() < strict.mask.size
    assert abs(strict.mask.mean() - 0.1) < 0.05 and abs(lax.mask.mean() - 0.9) < 0.05
    assert predictor.threshold == own
    assert (predictor(path, "x").mask == (strict.probability >= own)).all()
