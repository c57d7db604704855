"""The loss and each routing regularizer on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from sera_cli.config import LossConfig
from sera_cli.model.losses import dice_loss, routing_losses, sera_loss
from sera_cli.model.regularizers import assignment_loss, cv_squared, load_balance_loss, z_loss
from sera_cli.model.routing import Routing
from sera_cli.model.sera import SeraOutput


def test_z_loss_is_the_mean_square_of_the_logits() -> None:
    logits = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    assert z_loss(Routing(gates=torch.zeros(2, 2), logits=logits)).item() == 7.5


def test_load_balance_is_the_cv_squared_of_summed_gates() -> None:
    gates = torch.tensor([[1.0, 0.0], [0.5, 0.5]])  # sums 1.5, 0.5: var 0.25, mean 1
    assert load_balance_loss(Routing(gates=gates, logits=torch.zeros(2, 2))).item() == 0.25
    assert cv_squared(torch.tensor([2.0, 2.0, 2.0])).item() == 0.0


def test_assignment_loss_counts_samples_and_passes_the_soft_gradient() -> None:
    """Value: CV^2 of how many samples each expert got (3, 1, 0 -> var 14/9, mean 4/3);
    gradient (straight-through): CV^2's gradient at the hard counts, carried back through the
    softmax counts."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [2.0, 0.0, -1.0], [2.0, 0.0, -1.0],
                           [0.0, 2.0, -1.0]], requires_grad=True)
    gates = torch.zeros(4, 3)
    gates[:3, 0] = 1.0
    gates[3, 1] = 1.0
    loss = assignment_loss(Routing(gates=gates, logits=logits))
    assert loss.item() == pytest.approx((14 / 9) / (4 / 3) ** 2)
    loss.backward()
    hard = torch.tensor([3.0, 1.0, 0.0], requires_grad=True)
    cv_squared(hard).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    expected = torch.autograd.functional.jacobian(
        lambda z: torch.softmax(z, -1).sum(0), logits.detach())  # (E, B, E)
    assert torch.allclose(logits.grad, torch.einsum("e,ebf->bf", hard.grad, expected),
                          atol=1e-6)


def test_dice_on_known_masks() -> None:
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    perfect = torch.tensor([[20.0, 20.0, -20.0, -20.0]])
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    half = torch.zeros(1, 4)  # p = 0.5 everywhere: 1 - (2 * 1 + 1) / (2 + 2 + 1)
    assert dice_loss(half, target).item() == pytest.approx(1 - 3 / 5)


def test_every_regularizer_reaches_the_loss_with_its_weight() -> None:
    logits = torch.tensor([[1.0, 3.0]])
    routing = Routing(gates=torch.tensor([[0.0, 1.0]]), logits=logits)
    out = SeraOutput(logits=torch.zeros(1, 1, 2, 2), routings={"fusion": routing,
                                                               "adapter.2": routing})
    mask = torch.ones(1, 4, 4)
    weights = LossConfig(bce=1.0, dice=0.0, z_loss=0.1, balance_loss=0.2, assignment_loss=0.3)
    total, parts = sera_loss(out, mask, weights)
    parts_from_routers = routing_losses(out.routings)
    assert parts["z_loss"] == pytest.approx(2 * 5.0)  # two routers, mean of 1 and 9
    assert parts["balance_loss"] == pytest.approx(2 * 1.0)  # sums (0, 1): var .25 / .25
    assert parts["assignment_loss"] == pytest.approx(float(parts_from_routers[
        "assignment_loss"]))
    expected = (math.log(2) + 0.1 * parts["z_loss"] + 0.2 * parts["balance_loss"]
                + 0.3 * parts["assignment_loss"])
    assert total.item() == pytest.approx(expected, rel=1e-6)
    for name in ("z_loss", "balance_loss", "assignment_loss"):
        zero = LossConfig(**{**weights.__dict__, name: 0.0})
        assert sera_loss(out, mask, zero)[0].item() < total.item() or parts[name] == 0


def test_cv_squared_is_never_negative_even_about_a_zero_mean() -> None:
    assert cv_squared(torch.tensor([1e-6, -1e-6])).item() > 0


def test_one_expert_or_none_has_nothing_to_balance() -> None:
    """A single entry has no spread: a constant 0, with no graph behind it, whatever the entry
    (even an overflowed one, whose variance would be NaN)."""
    load = torch.tensor([3.0], requires_grad=True)
    zero = cv_squared(load)
    assert zero.item() == 0.0 and zero.shape == () and not zero.requires_grad
    assert cv_squared(torch.tensor([float("inf")])).item() == 0.0
    assert cv_squared(torch.zeros(0)).item() == 0.0
