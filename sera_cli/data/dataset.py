"""A torch Dataset over one split of a `ReferIndex`: letterboxed image, tokens, letterboxed mask.

One item is one (ref, sentence) pair, every sentence of every ref (docs/metrics.md). `meta(i)`
gives what evaluation needs to put a prediction back on the original image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sera_cli.data.augment import augment_sample, jitter_letterbox
from sera_cli.data.refer import ReferIndex, ReferSample
from sera_cli.data.tokenize import tokenize, warn_cut
from sera_cli.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    Letterbox,
    letterbox_image,
    letterbox_mask,
    normalize,
)


@dataclass(frozen=True)
class SampleMeta:
    """The sample and the (unaugmented) letterbox its item was made with."""

    sample: ReferSample
    letterbox: Letterbox


class ReferDataset(Dataset):
    """Items `{"image": (3,S,S) float, "words": (L,) long, "mask": (S,S) float, "no_target":
    float, "index": int}`.

    The image is normalized with `mean`/`std` and padded with `mean` (so the padding is 0); the
    mask is 1 on the target (the union of several, none for an expression naming nothing) and 0
    elsewhere, padding included; `no_target` is 1.0 for an expression naming nothing. With
    `augment=True` each item is flipped (with left/right swapped in the sentence),
    colour-jittered when the sentence names no colour, and shrunk/shifted inside the letterbox;
    `meta(i)` then still describes the plain letterbox, so evaluate with `augment=False`.
    """

    def __init__(
        self,
        index: ReferIndex,
        split: str,
        image_size: int,
        context_length: int,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.index = index
        self.split = split
        self.samples = index.samples(split)
        self.image_size = image_size
        self.context_length = context_length
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on (seed, epoch, item) only: the same in any worker, and
        the same again when a run resumes mid-epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def meta(self, i: int) -> SampleMeta:
        """Sample i and its letterbox, from instances.json sizes (no image is decoded)."""
        sample = self.samples[i]
        width, height = self.index.image_size(sample)
        return SampleMeta(sample, Letterbox.fit(width, height, self.image_size))

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.samples[i]
        image = self.index.image(sample)
        mask = self.index.mask(sample)
        sentence = sample.sentence
        lb = None
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            image, mask, sentence = augment_sample(image, mask, sentence, rng)
            lb = jitter_letterbox(image.width, image.height, self.image_size, rng)
        pixels, lb = letterbox_image(image, self.image_size, lb=lb, fill=self.mean)
        # (S, S, 3) -> (3, S, S)
        tensor = normalize(torch.from_numpy(pixels).permute(2, 0, 1), self.mean, self.std)
        return {
            "image": tensor.contiguous(),
            "words": tokenize([sentence], self.context_length)[0],
            "mask": torch.from_numpy(letterbox_mask(mask, lb).astype(np.float32)),
            "no_target": float(sample.no_target),
            "index": i,
        }


def dataset_for(model_cfg: Any, index: ReferIndex, split: str, augment: bool = False,
                seed: int = 0) -> ReferDataset:
    """One split of ``index`` as a model of config ``model_cfg`` reads it: its input size, word
    length and normalization; augmented only for training. Expressions longer than the word
    length are counted once here, and the count is a warning."""
    dataset = ReferDataset(index, split, model_cfg.image_size, model_cfg.text.context_length,
                           mean=model_cfg.mean, std=model_cfg.std, augment=augment, seed=seed)
    warn_cut([s.sentence for s in dataset.samples], dataset.context_length,
             f"{index.dataset} {split}")
    return dataset


def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items into `image` (B,3,S,S), `words` (B,L), `mask` (B,S,S), `no_target` (B,),
    `index` (B,)."""
    return {
        "image": torch.stack([b["image"] for b in batch]),
        "words": torch.stack([b["words"] for b in batch]),
        "mask": torch.stack([b["mask"] for b in batch]),
        "no_target": torch.tensor([b["no_target"] for b in batch], dtype=torch.float32),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
    }
