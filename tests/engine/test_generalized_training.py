"""Training on gRefCOCO-layout data turns the no-target head on (and records it), and a run with
the head answers "no target" in `sera predict`'s text and JSON, with an empty mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_trainer, metrics_records, sera
from PIL import Image
from safetensors.torch import load_file, save_file


@pytest.fixture(scope="module")
def gref_run(gref_synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("gref-run") / "run"
    # Fraction 0: these two steps draw no-target and multi-target samples, not the one-target
    # epochs that the preset's grefcoco defaults begin with.
    trainer = make_trainer(run, gref_synth_root, dataset="grefcoco", max_steps=2,
                           single_target_fraction=0)
    assert trainer.model_cfg.no_target_head is True  # the training split has no-target refs
    trainer.fit()
    return run


def test_the_head_is_on_for_generalized_data_and_recorded(gref_run: Path) -> None:
    config = json.loads((gref_run / "config.json").read_text())
    assert config["model"]["no_target_head"] is True
    lines = metrics_records(gref_run)
    assert all("no_target_loss" in line for line in lines if "loss" in line)
    by_type = next(line["val"]["by_type"] for line in lines if "val" in line)
    assert {"no-target", "multi-target"} <= set(by_type)


def test_the_first_epochs_draw_one_target_expressions_only(tmp_path: Path,
                                                          gref_synth_root: Path) -> None:
    trainer = make_trainer(tmp_path / "run", gref_synth_root, dataset="grefcoco", epochs=2,
                           single_target_fraction=0.5)
    samples, plan = trainer.train_set.samples, trainer.plan
    assert trainer.total_steps == plan.steps_in(0) + plan.steps_in(1) < 2 * plan.steps_in(1)
    first = [samples[i] for batch in trainer._batches().batch_sampler for i in batch]
    assert len(first) == 4 * plan.steps_in(0) and all(len(s.ann_ids) == 1 for s in first)
    trainer.step = plan.steps_in(0)
    second = [samples[i] for batch in trainer._batches().batch_sampler for i in batch]
    assert any(s.no_target for s in second) and any(len(s.ann_ids) > 1 for s in second)


class _Notes:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def __getattr__(self, name: str) -> object:  # start, step, validated: not looked at here
        return lambda *args, **kwargs: None


@pytest.mark.parametrize(("options", "said"), [
    ({"epochs": 10, "max_steps": 1}, "all 1 steps fall in the 7 one-target epochs"),
    ({"epochs": 1, "max_steps": 1}, "0.7 of 1 epochs rounds down to none"),
    ({"epochs": 10, "max_steps": 1, "single_target_fraction": 0}, None),
])
def test_a_fraction_that_does_nothing_or_everything_is_said(
        tmp_path: Path, gref_synth_root: Path, options: dict, said: str | None) -> None:
    reporter = _Notes()
    trainer = make_trainer(tmp_path / "run", gref_synth_root, reporter=reporter,
                           dataset="grefcoco", **options)
    trainer.fit()
    fraction = [n for n in reporter.notes if "--single-target-fraction" in n]
    assert len(fraction) == (said is not None)
    assert said is None or said in fraction[0]


def test_too_few_one_target_expressions_for_a_batch_are_refused(tmp_path: Path,
                                                              gref_synth_root: Path) -> None:
    from sera_cli.errors import SeraError

    with pytest.raises(SeraError, match="--single-target-fraction: split 'val' has .* fewer "
                                        "than one batch"):
        make_trainer(tmp_path / "run", gref_synth_root, dataset="grefcoco", epochs=2,
                     single_target_fraction=0.5, train_split="val", batch_size=24)


def test_an_explicit_no_keeps_it_off(tmp_path: Path, gref_synth_root: Path) -> None:
    trainer = make_trainer(tmp_path / "run", gref_synth_root, dataset="grefcoco", max_steps=1,
                           no_target_head=False)
    assert trainer.model_cfg.no_target_head is False and trainer.model.no_target_head is None


def _with_head_bias(run: Path, bias: float, out: Path) -> Path:
    """A copy of ``run`` whose no-target head always answers one way."""
    import shutil

    shutil.copytree(run, out)
    state = load_file(out / "model.safetensors")
    state["no_target_head.mlp.2.bias"].fill_(bias)
    state["no_target_head.mlp.2.weight"].zero_()
    save_file(state, out / "model.safetensors")
    return out


def test_predict_answers_no_target_with_an_empty_mask(gref_run: Path, gref_synth_root: Path,
                                                      tmp_path: Path) -> None:
    image = next((gref_synth_root / "images" / "train2014").iterdir())
    nothing = _with_head_bias(gref_run, 30.0, tmp_path / "nothing")
    mask = tmp_path / "mask.png"
    result = sera("predict", image, "the purple star", "--checkpoint", nothing, "--out", mask,
                  "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["no_target"] is True and data["no_target_probability"] == pytest.approx(1.0)
    assert data["area"] == 0 and data["box"] is None
    assert not np.asarray(Image.open(mask)).any()
    text = sera("predict", image, "the purple star", "--checkpoint", nothing, "--out", mask)
    assert text.exit_code == 0 and ": no target (no-target probability 1.00) ->" in text.output

    something = _with_head_bias(gref_run, -30.0, tmp_path / "something")
    data = json.loads(sera("predict", image, "the red circle", "--checkpoint", something,
                           "--out", mask, "--json").output)
    assert data["no_target"] is False and data["no_target_probability"] == pytest.approx(0.0)
    assert data["area"] == int((np.asarray(Image.open(mask)) > 0).sum())


def test_a_model_without_the_head_reports_no_probability(trained_run: Path, tmp_path: Path,
                                                         synth_data_root: Path) -> None:
    image = next((synth_data_root / "images" / "mscoco" / "images" / "train2014").iterdir())
    result = sera("predict", image, "the red circle", "--checkpoint", trained_run, "--out",
                  tmp_path / "m.png", "--json")
    data = json.loads(result.output)
    assert data["no_target_probability"] is None
    assert data["no_target"] == (data["area"] == 0)  # only an empty mask says "nothing"
