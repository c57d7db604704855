"""Augmentation keeps the expression true: a flip swaps left and right, colour jitter only
where the sentence names no colour."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sera_cli.data.augment import augment_sample, has_colour_words, hflip_sample, swap_left_right


@pytest.mark.parametrize(
    "before, after",
    [
        ("man on the left", "man on the right"),
        ("Leftmost chair, right of the table", "Rightmost chair, left of the table"),
        ("LEFT guy", "RIGHT guy"),
        ("the lefthand one, to the rightward", "the righthand one, to the leftward"),
        ("bright upright righteous leftover", "bright upright righteous leftover"),
    ],
)
def test_swap_left_right(before: str, after: str) -> None:
    assert swap_left_right(before) == after
    assert swap_left_right(after) == before


def test_hflip_sample_mirrors_image_mask_and_words() -> None:
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[:, 0] = 255  # white left column
    mask = np.zeros((4, 6), bool)
    mask[1, 0] = True
    img, m, sentence = hflip_sample(Image.fromarray(pixels), mask, "the left column")
    assert sentence == "the right column"
    assert (np.asarray(img)[:, -1] == 255).all() and (np.asarray(img)[:, 0] == 0).all()
    assert m[1, -1] and m.sum() == 1


def test_colour_jitter_only_without_colour_words() -> None:
    assert has_colour_words("the Red car") and has_colour_words("darker shirt")
    assert not has_colour_words("the man on the left") and not has_colour_words("credit")
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (8, 8, 3), np.uint8))
    mask = np.zeros((8, 8), bool)
    changed = 0
    for seed in range(20):
        out, _, s = augment_sample(
            img, mask, "the blue cup on the left", np.random.default_rng(seed)
        )
        expected = img if "left" in s else img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        assert np.array_equal(np.asarray(out), np.asarray(expected))  # colours untouched
        out, _, s = augment_sample(img, mask, "the cup on the left", np.random.default_rng(seed))
        expected = img if "left" in s else img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        changed += not np.array_equal(np.asarray(out), np.asarray(expected))
    assert changed >= 15
