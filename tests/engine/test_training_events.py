"""What the loop does at its events: which weights are kept as the best, what SIGTERM does, and
a resume exactly at an epoch's end."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_trainer
from safetensors.torch import load_file

from sera_cli.engine import evaluation
from sera_cli.errors import SeraError, TrainingInterrupted


class _Events:
    """A Reporter that can send this process a signal at a step and copies the weights at
    each validation."""

    def __init__(self, trainer_ref: list[Any], signal_at: int | None = None,
                 signum: int = signal.SIGTERM) -> None:
        self.ref, self.at, self.signum = trainer_ref, signal_at, signum
        self.weights_at_validation: list[dict[str, torch.Tensor]] = []

    def start(self, total_steps: int, done: int) -> None: ...
    def note(self, text: str) -> None: ...

    def step(self, logs: dict[str, Any]) -> None:
        if logs["step"] == self.at:
            os.kill(os.getpid(), self.signum)

    def validated(self, result: dict[str, Any]) -> None:
        model = self.ref[0].model
        self.weights_at_validation.append({k: v.clone() for k, v in model.state_dict().items()})


def test_the_best_validation_is_kept_not_the_last(tmp_path: Path, synth_data_root: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    scores = iter([10.0, 30.0, 20.0])
    real = evaluation.evaluate

    def scripted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real(*args, **kwargs), "miou": next(scores)}

    monkeypatch.setattr(evaluation, "evaluate", scripted)
    ref: list[Any] = []
    events = _Events(ref)
    run = tmp_path / "run"
    trainer = make_trainer(run, synth_data_root, reporter=events, max_steps=6, val_every=2)
    ref.append(trainer)
    assert trainer.fit()["best_val_miou"] == 30.0
    config = json.loads((run / "config.json").read_text())
    assert config["best"]["val_miou"] == 30.0
    saved = load_file(run / "model.safetensors")
    second = events.weights_at_validation[1]
    assert all(torch.equal(saved[k], second[k]) for k in saved)
    assert not all(torch.equal(saved[k], events.weights_at_validation[2][k]) for k in saved)


def test_sigterm_saves_the_step_and_stops_cleanly(tmp_path: Path, synth_data_root: Path) -> None:
    ref: list[Any] = []
    run = tmp_path / "run"
    trainer = make_trainer(run, synth_data_root, reporter=_Events(ref, signal_at=3),
                           max_steps=8)
    ref.append(trainer)
    with pytest.raises(TrainingInterrupted, match=f"interrupted at step 3; state saved, "
                                                  f"continue with: sera train --resume {run}"
                       ) as stopped:
        trainer.fit()
    assert stopped.value.step == 3
    assert (run / "checkpoints" / "last").read_text() == "step-00000003"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


def test_resume_exactly_at_an_epoch_end_gives_the_same_weights(tmp_path: Path,
                                                              synth_data_root: Path) -> None:
    small = {"train_split": "val"}  # a short epoch keeps this test quick
    epoch = make_trainer(tmp_path / "probe", synth_data_root, max_steps=1, **small
                         ).plan.steps_in(0)
    options = {"max_steps": epoch + 2, "lr": 1e-3, **small}
    straight = make_trainer(tmp_path / "straight", synth_data_root, **options)
    straight.fit()
    ref: list[Any] = []
    interrupted = make_trainer(tmp_path / "resumed", synth_data_root,
                               reporter=_Events(ref, signal_at=epoch, signum=signal.SIGINT),
                               **options)
    ref.append(interrupted)
    with pytest.raises(SeraError, match=f"interrupted at step {epoch}"):
        interrupted.fit()
    resumed = make_trainer(tmp_path / "resumed", synth_data_root, **options)
    resumed.resume()
    assert resumed.step == epoch
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
