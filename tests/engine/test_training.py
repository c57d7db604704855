"""The training loop: it learns, it resumes to the same weights, it fails cleanly."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_trainer, metrics_records

from sera_cli.config.layering import build_configs
from sera_cli.engine.schedule import epoch_batches, lr_factor
from sera_cli.errors import SeraError
from sera_cli.runs.folders import last_checkpoint
from sera_cli.runs.train_state import STATE_JSON


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in metrics_records(run) if "loss" in r]


def test_training_lowers_the_loss_and_writes_the_run(tmp_path: Path,
                                                     synth_data_root: Path) -> None:
    run = tmp_path / "run"
    summary = make_trainer(run, synth_data_root, max_steps=24, lr=2e-3, warmup_steps=0).fit()
    values = losses(run)
    assert len(values) == 24
    assert sum(values[-6:]) / 6 < 0.8 * sum(values[:6]) / 6
    assert (run / "config.json").is_file() and (run / "model.safetensors").is_file()
    assert (run.parent / "latest").resolve() == run.resolve()
    val = [r for r in metrics_records(run) if "val" in r]
    assert val and val[-1]["val"]["n"] > 0 and summary["steps"] == 24


class _InterruptAt:
    """Sends this process SIGINT at a chosen step, as Ctrl-C would."""

    def __init__(self, step: int) -> None:
        self.at = step

    def start(self, total_steps: int, done: int) -> None: ...
    def validated(self, result: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...

    def step(self, logs: dict[str, Any]) -> None:
        if logs["step"] == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupt_then_resume_gives_the_same_weights_and_time(tmp_path: Path,
                                                               synth_data_root: Path) -> None:
    # 9 steps cross an epoch boundary (batch 4) only if the split is small; either way the
    # top-k router's noise and the augmentation must replay exactly.
    options = {"max_steps": 9, "lr": 1e-3}
    straight = make_trainer(tmp_path / "straight", synth_data_root, **options)
    straight.fit()

    interrupted = make_trainer(tmp_path / "resumed", synth_data_root,
                               reporter=_InterruptAt(4), **options)
    with pytest.raises(SeraError, match="interrupted at step 4; state saved.*--resume"):
        interrupted.fit()
    # as if the first process had trained for 1000 s: the resumed metrics must count them
    state = last_checkpoint(tmp_path / "resumed") / STATE_JSON
    assert json.loads(state.read_text())["elapsed_s"] > 0
    state.write_text(json.dumps({**json.loads(state.read_text()), "elapsed_s": 1000.0}))
    resumed = make_trainer(tmp_path / "resumed", synth_data_root, **options)
    resumed.resume()
    assert resumed.step == 4
    began = time.perf_counter()
    resumed.fit()
    resumed_for = time.perf_counter() - began
    elapsed = [r["elapsed_s"] for r in metrics_records(tmp_path / "resumed") if r["step"] > 4
               and "elapsed_s" in r]
    assert elapsed and all(1000.0 < e < 1000.0 + resumed_for for e in elapsed)

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path: Path,
                                                               synth_data_root: Path) -> None:
    run = tmp_path / "run"
    trainer = make_trainer(run, synth_data_root, max_steps=6, save_every=2)
    original = trainer.model.projector.forward
    calls = {"n": 0}

    def poisoned(x: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = original(x, sentence)
        return out * float("nan") if calls["n"] == 3 and trainer.model.training else out

    trainer.model.projector.forward = poisoned  # type: ignore[method-assign]
    with pytest.raises(SeraError, match="loss became nan at step 3"):
        trainer.fit()
    pointer = (run / "checkpoints" / "last").read_text()
    assert pointer == "step-00000002"
    weights = run / "checkpoints" / pointer / "model.safetensors"
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(weights).values())


def test_epoch_batches_partition_the_data_across_ranks() -> None:
    one = epoch_batches(20, 4, 5, seed=1, epoch=0, rank=0, world=1)
    assert sorted(i for b in one for i in b) == list(range(20))
    assert one == epoch_batches(20, 4, 5, seed=1, epoch=0, rank=0, world=1)
    assert one != epoch_batches(20, 4, 5, seed=1, epoch=1, rank=0, world=1)
    r0 = epoch_batches(20, 4, 2, seed=1, epoch=0, rank=0, world=2)
    r1 = epoch_batches(20, 4, 2, seed=1, epoch=0, rank=1, world=2)
    assert not {i for b in r0 for i in b} & {i for b in r1 for i in b}


def test_lr_schedule_warmup_and_steps() -> None:
    _, cfg = build_configs({"preset": "sera-b", "warmup_steps": 10, "milestones": "0.5,0.75"})
    assert lr_factor(cfg, 0, 100) == pytest.approx(0.1)
    assert lr_factor(cfg, 10, 100) == 1.0
    assert lr_factor(cfg, 50, 100) == pytest.approx(0.1)
    assert lr_factor(cfg, 80, 100) == pytest.approx(0.01)


@pytest.mark.parametrize("option,value,message", [
    ("batch_size", 0, "--batch-size must be positive, got 0"),
    ("lr", -1.0, "--lr must be a positive number"),
    ("epochs", 0, "--epochs must be positive"),
    ("topk", 5, "--topk 5 is out of range: choose 1 to 4"),
    ("experts", "spatial,spatial", "--experts names spatial more than once"),
    ("schedule", "linear", "--schedule 'linear' is not one of step, cosine, constant"),
    ("val_every", -1, "--val-every must not be negative"),
])
def test_bad_options_are_named(option: str, value: Any, message: str) -> None:
    with pytest.raises(SeraError, match=message):
        build_configs({"preset": "sera-tiny", option: value})


def test_too_few_samples_for_one_batch(tmp_path: Path, synth_data_root: Path) -> None:
    with pytest.raises(SeraError, match="fewer than one batch"):
        make_trainer(tmp_path / "run", synth_data_root, batch_size=100_000)


def test_val_every_validates_inside_epochs_and_once_at_the_end(tmp_path: Path,
                                                              synth_data_root: Path) -> None:
    run = tmp_path / "run"
    trainer = make_trainer(run, synth_data_root, max_steps=5, val_every=2)
    assert trainer.plan.steps_in(0) > 5  # all of it inside the first epoch
    trainer.fit()
    assert [r["step"] for r in metrics_records(run) if "val" in r] == [2, 4, 5]
