"""``--precision``: what auto picks on which device, bf16 refused where it would be emulated, a
run lowered to bf16 for inference with float32 probabilities, and bf16 masks that agree with
float32 ones on a trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_trainer, sera

from sera_cli.engine.devices import PROJECTOR_BF16, autocast, resolve_precision
from sera_cli.engine.inference import Predictor
from sera_cli.engine.loading import open_run
from sera_cli.errors import SeraError

CPU = torch.device("cpu")


def cpu_features(monkeypatch: pytest.MonkeyPatch, *, amx: bool, avx512_bf16: bool) -> None:
    """Pretend the CPU has (or lacks) the bf16 units, whatever this machine has."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 runs on any CPU (emulated where the units are missing), so the bf16 paths are
    tested everywhere; only the choice of ``auto`` depends on the units."""
    cpu_features(monkeypatch, amx=False, avx512_bf16=True)


@pytest.mark.parametrize("amx,avx512_bf16,picked,trains_in", [
    (True, False, "bf16", PROJECTOR_BF16), (False, True, "bf16", PROJECTOR_BF16),
    (False, False, "fp32", "fp32")])
def test_auto_is_bf16_on_cpus_with_bf16_units_and_trains_only_the_projector_in_it(
        monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool, picked: str,
        trains_in: str) -> None:
    cpu_features(monkeypatch, amx=amx, avx512_bf16=avx512_bf16)
    assert resolve_precision("auto", CPU) == picked
    assert resolve_precision("auto", CPU, training=True) == trains_in
    assert resolve_precision("fp32", CPU, training=True) == "fp32"
    assert resolve_precision("fp32", CPU) == "fp32"


@pytest.mark.parametrize("precision,logits", [("auto", torch.bfloat16), ("fp32", torch.float32)])
def test_auto_training_on_a_bf16_cpu_autocasts_the_projector_alone(
        tmp_path: Path, synth_data_root: Path, bf16_cpu: None, precision: str,
        logits: torch.dtype) -> None:
    """The projector computes in bf16 (its logits say so), the rest in float32 (the decoded
    map it reads), the weights stay float32, and the loss and its gradients are float32."""
    trainer = make_trainer(tmp_path / "run", synth_data_root, max_steps=1, precision=precision)
    model = trainer.model
    decoded = []
    model.decoder.register_forward_hook(lambda m, i, out: decoded.append(out.dtype))
    batch = next(iter(trainer._batches()))
    with autocast(CPU, trainer.precision):
        out = model(batch["image"], batch["words"])
    assert out.logits.dtype == logits
    assert decoded == [torch.float32]
    loss, _ = trainer._train_step(batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in model.projector.parameters()} == {torch.float32}


def test_bf16_on_a_cpu_without_bf16_units_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_features(monkeypatch, amx=False, avx512_bf16=False)
    with pytest.raises(SeraError, match="AMX or AVX512-BF16"):
        resolve_precision("bf16", CPU)
    with pytest.raises(SeraError, match="not one of auto, fp32, bf16"):
        resolve_precision("fp16", CPU)


def test_bf16_autocast_runs_the_cpu_matmuls_in_bf16(bf16_cpu: None) -> None:
    a = torch.randn(4, 4)
    with autocast(CPU, resolve_precision("bf16", CPU, training=True)):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert (a @ a).dtype == torch.float32


def test_a_run_opened_in_bf16_holds_bf16_weights_and_gives_float32_probabilities(
        trained_run: Path, bf16_cpu: None, images: dict[str, Path]) -> None:
    loaded = open_run(trained_run, precision="bf16")
    assert loaded.precision == "bf16"
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in open_run(trained_run, precision="fp32").model.parameters()} == {
        torch.float32}
    predictor = Predictor(trained_run, precision="bf16")
    assert predictor.loaded.precision == "bf16"
    prediction = predictor(images["ok"], "the red circle")
    assert prediction.probability.dtype == np.float32
    assert prediction.mask.shape == prediction.probability.shape == (40, 60)


def test_sera_predict_takes_precision_and_refuses_an_unknown_one(
        trained_run: Path, bf16_cpu: None, images: dict[str, Path], tmp_path: Path) -> None:
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.png"
        result = sera("predict", images["ok"], "the red circle", "--checkpoint", trained_run,
                      "--out", out, "--precision", precision)
        assert result.exit_code == 0, result.output
        assert out.is_file()
    result = sera("predict", images["ok"], "the red circle", "--checkpoint", trained_run,
                  "--out", tmp_path / "x.png", "--precision", "fp16")
    assert result.exit_code != 0 and "not one of auto, fp32, bf16" in result.output


@pytest.mark.slow
def test_bf16_masks_of_a_trained_model_agree_with_float32(tmp_path: Path, synth_data_root: Path,
                                                          bf16_cpu: None) -> None:
    """A model that has learnt its masks (it memorizes the val split, as in test_learning), so
    that agreement is not that of two empty masks."""
    from sera_cli.analysis.metrics import sample_iou

    trainer = make_trainer(tmp_path / "run", synth_data_root, train_split="val",
                           val_split="val", augment=False, max_steps=80, lr=2e-3,
                           warmup_steps=10, milestones="0.8", precision="fp32")
    assert trainer.fit()["best_val_miou"] >= 40.0
    fp32 = Predictor(tmp_path / "run", precision="fp32")
    bf16 = Predictor(tmp_path / "run", precision="bf16")
    index = trainer.val_set.index
    same = total = 0
    ious: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for sample in index.samples("val"):
        path, truth = index.image_path(sample), index.mask(sample)
        a, b = fp32(path, sample.sentence).mask, bf16(path, sample.sentence).mask
        same, total = same + int((a == b).sum()), total + a.size
        ious["fp32"].append(sample_iou(a, truth))
        ious["bf16"].append(sample_iou(b, truth))
    agreement = same / total
    miou = {k: 100 * float(np.mean(v)) for k, v in ious.items()}
    print(f"bf16 / fp32 mask agreement {100 * agreement:.2f}% of pixels; val mIoU {miou}")
    assert agreement >= 0.99
    assert abs(miou["bf16"] - miou["fp32"]) <= 1.0
