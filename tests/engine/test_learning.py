"""Training reaches a mask IoU: sera-tiny memorizes a handful of (image, expression) pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_trainer


@pytest.mark.slow
def test_tiny_model_fits_a_small_split_to_a_high_iou(tmp_path: Path,
                                                     synth_data_root: Path) -> None:
    trainer = make_trainer(tmp_path / "run", synth_data_root, train_split="val",
                           val_split="val", augment=False, max_steps=120, lr=2e-3,
                           warmup_steps=10, milestones="0.8")
    summary = trainer.fit()
    print(f"fit {len(trainer.train_set)} samples: val mIoU {summary['best_val_miou']:.1f}")
    assert summary["best_val_miou"] >= 60.0
