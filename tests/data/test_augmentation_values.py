"""Augmentation changes the samples, and the draws depend on the epoch (and nothing else)."""

from __future__ import annotations

from pathlib import Path

import torch

from sera_cli.config import preset
from sera_cli.data.augment import swap_left_right
from sera_cli.data.dataset import dataset_for
from sera_cli.data.refer import ReferIndex
from sera_cli.data.tokenize import tokenize


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


def test_a_flip_swaps_left_and_right_in_the_tokens(synth_data_root: Path) -> None:
    # The letterbox jitter alone also changes every image: only the words show that the
    # sample-level augmentation (flip with word swap) ran.
    cfg = preset("sera-tiny")
    index = ReferIndex.load(synth_data_root, "synth")
    plain = dataset_for(cfg, index, "train")
    augmented = dataset_for(cfg, index, "train", augment=True, seed=3)
    sided = [i for i, s in enumerate(plain.samples) if " left" in s.sentence][:4]
    assert sided, "the synthetic set has sentences with 'left'"
    swapped = 0
    for epoch in range(6):
        augmented.set_epoch(epoch)
        for i in sided:
            words = augmented[i]["words"]
            if not torch.equal(words, plain[i]["words"]):
                swapped += 1
                right = swap_left_right(plain.samples[i].sentence)
                assert torch.equal(words, tokenize([right], plain.context_length)[0])
    assert 0 < swapped < 6 * len(sided)  # flipped about half the time, never always
