"""The training loss by value: Dice per sample, the Dice and no-target terms with their weights,
the mask brought to the logits' resolution, and no routers at all."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sera_cli.config import LossConfig
from sera_cli.model.losses import dice_loss, routing_losses, sera_loss
from sera_cli.model.sera import SeraOutput

NO_REGULARIZERS = {"z_loss": 0.0, "balance_loss": 0.0, "assignment_loss": 0.0}


def test_dice_is_computed_per_sample_then_averaged() -> None:
    """Sample 0 exact (loss 0), sample 1 at p = 0.5 on 2 of 4 pixels: 1 - 3 / 5; a Dice over the
    whole batch at once would give another figure."""
    logits = torch.tensor([[20.0, 20.0, -20.0, -20.0], [0.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert dice_loss(logits, target).item() == pytest.approx((0.0 + (1 - 3 / 5)) / 2, abs=1e-6)
    uneven = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    prob = torch.sigmoid(logits)
    per_sample = [1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
                  for p, t in zip(prob, uneven, strict=True)]
    assert dice_loss(logits, uneven).item() == pytest.approx(float(sum(per_sample) / 2))


def test_the_mask_is_scored_at_the_logits_resolution_with_dice_and_its_weight() -> None:
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    mask = torch.zeros(1, 4, 4)
    mask[0, :2, :2] = 1.0  # nearest to 2 x 2: only the top-left logit's target is 1
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    weights = LossConfig(bce=1.0, dice=0.5, **NO_REGULARIZERS)
    total, parts = sera_loss(SeraOutput(logits=logits, routings={}), mask, weights)
    bce = F.binary_cross_entropy_with_logits(logits, target).item()
    dice = dice_loss(logits, target).item()
    assert set(parts) == {"bce", "dice", "z_loss", "balance_loss", "assignment_loss"}
    assert parts["bce"] == pytest.approx(bce) and parts["dice"] == pytest.approx(dice)
    assert total.item() == pytest.approx(bce + 0.5 * dice)
    assert parts["z_loss"] == parts["balance_loss"] == parts["assignment_loss"] == 0.0
    _, without = sera_loss(SeraOutput(logits=logits, routings={}), mask,
                           LossConfig(dice=0.0, **NO_REGULARIZERS))
    assert "dice" not in without


def test_the_no_target_head_is_scored_only_with_its_flags() -> None:
    logits = torch.zeros(2, 1, 2, 2)
    mask = torch.zeros(2, 2, 2)
    head = torch.tensor([1.5, -0.5])
    flags = torch.tensor([1.0, 0.0])
    weights = LossConfig(no_target_loss=2.0, **NO_REGULARIZERS)
    total, parts = sera_loss(SeraOutput(logits=logits, routings={}, no_target=head), mask,
                             weights, flags)
    expected = F.binary_cross_entropy_with_logits(head, flags).item()
    assert parts["no_target_loss"] == pytest.approx(expected)
    assert total.item() == pytest.approx(math.log(2) + 2.0 * expected)
    for output, given in ((SeraOutput(logits=logits, routings={}, no_target=head), None),
                          (SeraOutput(logits=logits, routings={}), flags)):
        _, parts = sera_loss(output, mask, weights, given)
        assert "no_target_loss" not in parts


def test_a_model_without_routers_has_zero_tensors_for_the_regularizers() -> None:
    losses = routing_losses({})
    assert list(losses) == ["z_loss", "balance_loss", "assignment_loss"]
    assert all(isinstance(v, torch.Tensor) and v.item() == 0.0 for v in losses.values())
