"""Augmentation changes the samples, and the draws depend on the epoch (and nothing else)."""

from __future__ import annotations

from pathlib import Path

import torch

from sera_cli.config import preset
from sera_cli.data.dataset import dataset_for
from sera_cli.data.refer import ReferIndex


def test_augmentation_changes_samples_and_follows_the_epoch(synth_data_root: Path) -> None:
    cfg = preset("sera-tiny")
    index = ReferIndex.load(synth_data_root, "synth")
    plain = dataset_for(cfg, index, "train")
    augmented = dataset_for(cfg, index, "train", augment=True, seed=3)
    items = range(8)

    def images(ds: object, epoch: int) -> list[torch.Tensor]:
        ds.set_epoch(epoch)  # type: ignore[attr-defined]
        return [ds[i]["image"] for i in items]  # type: ignore[index]

    base = images(plain, 0)
    epoch0, epoch1 = images(augmented, 0), images(augmented, 1)
    assert sum(not torch.equal(a, b) for a, b in zip(base, epoch0, strict=True)) >= 6
    assert sum(not torch.equal(a, b) for a, b in zip(epoch0, epoch1, strict=True)) >= 6
    assert all(torch.equal(a, b) for a, b in zip(epoch0, images(augmented, 0), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(base, images(plain, 5), strict=True))
