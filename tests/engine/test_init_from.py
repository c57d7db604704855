"""`sera train --init-from RUN`: a run starts from another's weights, then trains under any
--tune; mismatched runs are refused naming the tensor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import fails, make_trainer, sera

from sera_cli.errors import SeraError
from sera_cli.runs.checkpoints import load_run

BACKBONES = ("vision.dinov2.", "text.tower.")


def test_bias_ln_from_a_run_starts_from_its_backbones_and_tunes_only_bias_and_ln(
        trained_run: Path, synth_data_root: Path, tmp_path: Path) -> None:
    source, _ = load_run(trained_run)
    trainer = make_trainer(tmp_path / "run", synth_data_root, init_from=str(trained_run),
                           tune="bias-ln", max_steps=1)
    theirs, ours = source.state_dict(), trainer.model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # step 0: the source's weights
    norms = {f"{m}.{p}" for m, mod in trainer.model.named_modules()
             if isinstance(mod, torch.nn.LayerNorm) for p, _ in mod.named_parameters()}
    for name, p in trainer.model.named_parameters():
        if name.startswith(BACKBONES):
            tuned = "bias" in name.rsplit(".", 1)[-1] or name in norms
            assert p.requires_grad == tuned, name
        else:
            assert p.requires_grad, name  # new modules train fully
    assert any(n in norms for n, p in trainer.model.named_parameters() if p.requires_grad)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.fit()
    for name, p in trainer.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[name]), name


def test_no_init_heads_takes_the_backbones_only(trained_run: Path, synth_data_root: Path,
                                                tmp_path: Path) -> None:
    source, _ = load_run(trained_run)
    fresh = make_trainer(tmp_path / "fresh", synth_data_root, max_steps=1, seed=5)
    trainer = make_trainer(tmp_path / "run", synth_data_root, init_from=str(trained_run),
                           init_heads=False, max_steps=1, seed=5)
    theirs, ours, own = source.state_dict(), trainer.model.state_dict(), fresh.model.state_dict()
    for key in ours:
        expected = theirs[key] if key.startswith(BACKBONES) else own[key]
        assert torch.equal(ours[key], expected), key


def test_another_width_is_refused_naming_the_tensor(trained_run: Path, synth_data_root: Path,
                                                    tmp_path: Path) -> None:
    with pytest.raises(SeraError, match=r"--init-from .*: tensor '.*' has shape .*presets or "
                                        r"widths differ"):
        make_trainer(tmp_path / "run", synth_data_root, init_from=str(trained_run),
                     fusion_dim=32, init_heads=True, max_steps=1)


def test_the_option_is_stored_and_a_missing_run_fails_before_training(
        trained_run: Path, synth_data_root: Path, tmp_path: Path) -> None:
    fails(sera("train", "--data", synth_data_root, "--init-from", tmp_path / "nope",
               "--max-steps", "1", "--out", tmp_path / "run"), str(tmp_path / "nope"))
    assert not (tmp_path / "run" / "checkpoints").exists()
    result = sera("train", "--data", synth_data_root, "--init-from", trained_run, "--tune",
                  "bias-ln", "--max-steps", "1", "--batch-size", "4", "--out",
                  tmp_path / "ok", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert config["train"]["init_from"] == str(trained_run) and config["model"]["tune"] == "bias-ln"
