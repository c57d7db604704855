"""The trainer's optimizer steps: its groups take --backbone-lr-mult, --weight-decay and the
schedule's factor, and --grad-clip bounds the step (the schedule itself: test_schedule.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_trainer

from sera_cli.engine.schedule import lr_factor


def test_optimizer_groups_take_the_backbone_multiplier_and_weight_decay(
        tmp_path: Path, synth_data_root: Path) -> None:
    trainer = make_trainer(tmp_path / "run", synth_data_root, lr=2e-3, backbone_lr_mult=0.25,
                           weight_decay=0.01, max_steps=1)
    new, backbone = trainer.optimizer.param_groups
    backbone_ids = {id(p) for name, p in trainer.model.named_parameters()
                    if name.startswith(("vision.dinov2.", "text.tower."))}
    assert {id(p) for p in backbone["params"]} == backbone_ids
    assert not {id(p) for p in new["params"]} & backbone_ids
    assert (new["lr"], backbone["lr"]) == (2e-3, 2e-3 * 0.25)
    assert new["weight_decay"] == backbone["weight_decay"] == 0.01
    trainer.cfg.warmup_steps = 0
    trainer._train_step(next(iter(trainer._batches())))
    factor = lr_factor(trainer.cfg, 0, trainer.total_steps)
    assert backbone["lr"] == pytest.approx(2e-3 * 0.25 * factor)


def test_gradient_clipping_bounds_the_step(tmp_path: Path, synth_data_root: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    original = torch.nn.utils.clip_grad_norm_

    def record(params, max_norm, *args, **kwargs):  # type: ignore[no-untyped-def]
        params = list(params)
        norm = original(params, max_norm, *args, **kwargs)
        seen.append(float(torch.linalg.vector_norm(torch.stack(
            [p.grad.norm() for p in params if p.grad is not None]))))
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", record)
    trainer = make_trainer(tmp_path / "run", synth_data_root, grad_clip=1e-3, max_steps=1)
    trainer._train_step(next(iter(trainer._batches())))
    assert seen == [pytest.approx(1e-3, rel=1e-3)]
    unclipped = make_trainer(tmp_path / "free", synth_data_root, grad_clip=0.0, max_steps=1)
    seen.clear()
    unclipped._train_step(next(iter(unclipped._batches())))
    assert seen == []
