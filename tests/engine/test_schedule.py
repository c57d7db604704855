"""The learning-rate schedules at named steps, each epoch's batches, and the optimizer's groups
(the trainer that uses them: test_optimizer_steps.py), and the epochs that draw one-target
expressions first."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sera_cli.config import ModelConfig, TrainConfig
from sera_cli.engine.schedule import EpochPlan, epoch_batches, lr_factor, optimizer_groups
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry


def test_cosine_schedule_at_named_steps() -> None:
    cfg = TrainConfig(schedule="cosine", warmup_steps=0)
    assert lr_factor(cfg, 0, 100) == 1.0
    assert lr_factor(cfg, 25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(cfg, 50, 100) == pytest.approx(0.5)
    assert lr_factor(cfg, 99, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    assert lr_factor(cfg, 99, 100) < 0.001


def test_warmup_then_cosine() -> None:
    cfg = TrainConfig(schedule="cosine", warmup_steps=10)
    assert [lr_factor(cfg, s, 100) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(cfg, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))


def test_step_schedule_and_constant() -> None:
    cfg = TrainConfig(schedule="step", milestones=[0.5, 0.8], gamma=0.1)
    assert [lr_factor(cfg, s, 10) for s in (0, 4, 5, 7, 8, 9)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor(TrainConfig(schedule="constant"), 7, 10) == 1.0


def test_a_run_of_no_steps_and_the_last_step() -> None:
    cosine, step = TrainConfig(schedule="cosine", warmup_steps=0), TrainConfig(schedule="step")
    assert lr_factor(cosine, 1, 1) == pytest.approx(0.0)  # progress 1: the end of the cosine
    assert lr_factor(cosine, 1, 0) == pytest.approx(0.0)  # no steps counts as one
    assert lr_factor(step, 0, 0) == 1.0


def test_each_epoch_deals_one_permutation_round_robin_in_full_batches() -> None:
    n, batch, steps, seed, epoch = 11, 2, 2, 3, 4
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    ranks = [epoch_batches(n, batch, steps, seed, epoch, rank, 2) for rank in (0, 1)]
    for rank, batches in enumerate(ranks):
        dealt = order[rank::2].tolist()  # rank 0 takes items 0, 2, 4 ... of the permutation
        assert batches == [dealt[0:2], dealt[2:4]]  # two full batches; the rest waits
    assert epoch_batches(n, batch, steps, seed, epoch, 0, 2) == ranks[0]  # a resume replays it
    assert epoch_batches(n, batch, steps, seed, epoch + 1, 0, 2) != ranks[0]
    assert epoch_batches(n, batch, steps, seed + 1, epoch, 0, 2) != ranks[0]
    single = epoch_batches(n, 5, 2, seed, epoch, 0, 1)
    assert single == [order[0:5].tolist(), order[5:10].tolist()]


def test_optimizer_groups_split_new_modules_from_tuned_backbone_parameters(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    model = build_model(dataclasses.replace(tiny_cfg, tune="bias-ln"), builtin_registry)
    new, backbone = optimizer_groups(model, TrainConfig(lr=2e-3, backbone_lr_mult=0.25))
    assert set(new) == set(backbone) == {"params", "lr"}
    assert (new["lr"], backbone["lr"]) == (2e-3, 2e-3 * 0.25)
    params = dict(model.named_parameters())
    by_id = {id(p): name for name, p in params.items()}
    new_names = [by_id[id(p)] for p in new["params"]]
    backbone_names = [by_id[id(p)] for p in backbone["params"]]
    in_backbone = ("vision.dinov2.", "text.tower.")
    assert new_names == [n for n, p in params.items() if not n.startswith(in_backbone)]
    assert backbone_names == [n for n, p in params.items()
                              if n.startswith(in_backbone) and p.requires_grad]
    assert backbone_names and len(backbone_names) < sum(n.startswith(in_backbone) for n in params)


def test_single_target_epochs_come_first_then_every_sample() -> None:
    single = (0, 2, 4, 6, 8, 9)
    plan = EpochPlan(n=10, single=single, single_epochs=2, batch=2)
    assert [plan.steps_in(e) for e in range(4)] == [3, 3, 5, 5]
    assert plan.total(4) == 16
    assert [plan.locate(s) for s in (0, 2, 3, 6, 8, 11, 16)] == [
        (0, 0), (0, 2), (1, 0), (2, 0), (2, 2), (3, 0), (4, 0)]
    assert plan.epochs_done(8) == pytest.approx(2.4)
    for epoch in (0, 1):
        drawn = [i for batch in plan.batches(epoch, seed=3, rank=0) for i in batch]
        assert len(drawn) == 6 and set(drawn) == set(single)
    assert plan.batches(0, 3, 0) != plan.batches(1, 3, 0)  # a new order each epoch
    drawn = [i for batch in plan.batches(2, seed=3, rank=0) for i in batch]
    assert sorted(drawn) == list(range(10))


def test_a_split_of_one_target_expressions_draws_as_before() -> None:
    """RefCOCO-layout runs keep their data order whatever the fraction."""
    plan = EpochPlan(n=11, single=tuple(range(11)), single_epochs=3, batch=2, world=2)
    for epoch in (0, 4):
        assert plan.batches(epoch, 5, 1) == epoch_batches(11, 2, 2, 5, epoch, 1, 2)
    assert plan.total(5) == 10 and plan.locate(7) == (3, 1)


@pytest.mark.parametrize(("fraction", "epochs", "single"), [(0.625, 8, 5), (0.625, 3, 1),
                                                            (0.3, 3, 0), (0.0, 8, 0)])
def test_the_fraction_of_epochs_rounds_down(fraction: float, epochs: int, single: int) -> None:
    cfg = TrainConfig(epochs=epochs, single_target_fraction=fraction).validate()
    assert cfg.single_target_epochs == single


@pytest.mark.parametrize("fraction", [1.0, -0.1])
def test_a_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    from sera_cli.errors import SeraError

    with pytest.raises(SeraError, match=f"--single-target-fraction must be .* got {fraction}"):
        TrainConfig(single_target_fraction=fraction).validate()
