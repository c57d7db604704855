from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sera_cli.data.dataset import ReferDataset, collate
from sera_cli.data.refer import ReferIndex
from sera_cli.data.tokenize import EOT_ID
from sera_cli.data.transforms import letterbox_mask, unletterbox


def test_items_shapes_values_and_meta_inverts(synth_data_root: Path) -> None:
    index = ReferIndex.load(synth_data_root, "synth")
    ds = ReferDataset(index, "val", image_size=64, context_length=17)
    assert len(ds) == len(index.samples("val"))
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["words"].shape == (17,) and item["words"].dtype == torch.long
    assert int(item["words"].argmax()) == int((item["words"] != 0).sum()) - 1
    assert item["words"].max() == EOT_ID
    assert item["mask"].shape == (64, 64) and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["index"] == 0

    meta = ds.meta(0)
    assert meta.sample == index.samples("val")[0]
    gt = index.mask(meta.sample)
    assert np.array_equal(item["mask"].numpy().astype(bool), letterbox_mask(gt, meta.letterbox))
    # padding normalizes to zero
    lb = meta.letterbox
    if lb.pad_left:
        assert item["image"][:, :, : lb.pad_left].abs().max() < 1e-5
    back = unletterbox(item["mask"], lb).numpy() > 0.5
    assert back.shape == gt.shape
    assert np.count_nonzero(back & gt) / np.count_nonzero(back | gt) > 0.8  # 64 px input: lossy


def test_augmented_items_and_collate(synth_data_root: Path) -> None:
    index = ReferIndex.load(synth_data_root, "synth")
    ds = ReferDataset(
        index, "train", 48, 12, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), augment=True
    )
    torch.manual_seed(0)
    batch = collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 48, 48) and batch["words"].shape == (4, 12)
    assert batch["mask"].shape == (4, 48, 48) and batch["index"].tolist() == [0, 1, 2, 3]
    assert (batch["mask"].flatten(1).sum(1) > 0).all()  # the target survives augmentation
    assert batch["image"].min() >= -1.0 - 1e-5 and batch["image"].max() <= 1.0 + 1e-5
    torch.manual_seed(0)
    again = collate([ds[i] for i in range(4)])
    assert torch.equal(again["image"], batch["image"])  # seeded through torch's generator
