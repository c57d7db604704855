"""The no-target head: absent unless asked for (old runs keep their tensors), trained by BCE on
the no-target flag, and what old config.json files turn into."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_inputs

from sera_cli.config import LossConfig, ModelConfig
from sera_cli.model.losses import sera_loss
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry


def test_off_by_default_and_the_state_dict_is_unchanged(tiny_cfg: ModelConfig,
                                                        builtin_registry: Registry) -> None:
    assert tiny_cfg.no_target_head is None  # decided by the training data
    plain = build_model(tiny_cfg, builtin_registry)
    assert plain.no_target_head is None
    assert plain(*tiny_inputs(tiny_cfg)).no_target is None
    headed = build_model(dataclasses.replace(tiny_cfg, no_target_head=True), builtin_registry)
    extra = set(headed.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("no_target_head.") for k in extra)
    assert set(plain.state_dict()) <= set(headed.state_dict())


def test_the_head_gives_one_logit_per_expression_that_depends_on_it(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    model = build_model(dataclasses.replace(tiny_cfg, no_target_head=True),
                        builtin_registry).eval()
    pixels, ids = tiny_inputs(tiny_cfg, batch=3)
    out = model(pixels, ids)
    assert out.no_target.shape == (3,)
    other = ids.clone()
    other[:, 1] = (other[:, 1] + 7) % 49000 + 1
    assert not torch.allclose(model(pixels, other).no_target, out.no_target)


def test_the_loss_adds_the_no_target_bce_only_for_a_model_with_the_head(
        tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    pixels, ids = tiny_inputs(tiny_cfg, batch=2)
    mask = torch.zeros(2, tiny_cfg.image_size, tiny_cfg.image_size)
    flags = torch.tensor([1.0, 0.0])
    weights = LossConfig(no_target_loss=2.0)
    out = build_model(dataclasses.replace(tiny_cfg, no_target_head=True), builtin_registry)(
        pixels, ids)
    total, parts = sera_loss(out, mask, weights, flags)
    expected = F.binary_cross_entropy_with_logits(out.no_target, flags).detach()
    assert parts["no_target_loss"] == pytest.approx(float(expected))
    without, _ = sera_loss(out, mask, dataclasses.replace(weights, no_target_loss=0.0), flags)
    assert float((total - without).detach()) == pytest.approx(2.0 * float(expected), rel=1e-5)
    plain = build_model(tiny_cfg, builtin_registry)(pixels, ids)
    assert "no_target_loss" not in sera_loss(plain, mask, weights, flags)[1]


def test_a_run_from_before_the_head_loads_unchanged(trained_run: Path, tmp_path: Path) -> None:
    """config.json files written before the field existed have no `no_target_head` key."""
    from sera_cli.runs.checkpoints import load_run

    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"]["no_target_head"] is False  # decided (synth has no such refs)
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    del config["model"]["no_target_head"], config["model"]["loss"]["no_target_loss"]
    (run / "config.json").write_text(json.dumps(config))
    old, _ = load_run(run)
    new, _ = load_run(trained_run)
    assert old.no_target_head is None and old.cfg.no_target_head is None
    assert old.state_dict().keys() == new.state_dict().keys()
    pixels, ids = tiny_inputs(old.cfg)
    with torch.no_grad():
        assert torch.equal(old(pixels, ids).logits, new(pixels, ids).logits)
