from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sera_cli.data.augment import jitter_letterbox
from sera_cli.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    Letterbox,
    letterbox_image,
    letterbox_mask,
    normalize,
    unletterbox,
)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def _round_trip(mask: np.ndarray, size: int) -> np.ndarray:
    lb = Letterbox.fit(mask.shape[1], mask.shape[0], size)
    boxed = letterbox_mask(mask.astype(np.float32), lb)  # (S, S) "probabilities" in {0, 1}
    back = unletterbox(torch.from_numpy(boxed), lb)
    assert back.shape == mask.shape
    return back.numpy() > 0.5


# (height, width): thin, wide, single pixel, single row, landscape and portrait photos
SIZES = [(37, 91), (91, 37), (1, 1), (1, 7), (427, 640), (640, 480)]


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("extra", [0, 1, 93])  # input side = longest side + extra
def test_round_trip_is_exact_when_the_image_is_not_shrunk(h: int, w: int, extra: int) -> None:
    rng = np.random.default_rng(h * 1000 + w)
    noise = rng.uniform(size=(h, w)) < 0.3  # every pixel independent: no smoothness to lean on
    size = max(h, w) + extra
    assert _iou(_round_trip(noise, size), noise) == 1.0
    assert np.array_equal(_round_trip(noise, size), noise)


def test_round_trip_when_shrunk_keeps_shapes() -> None:
    mask = np.zeros((427, 640), bool)
    mask[100:300, 150:500] = True
    assert _iou(_round_trip(mask, 448), mask) > 0.99


def test_low_resolution_prediction_is_upsampled_then_inverted() -> None:
    mask = np.zeros((91, 37), bool)
    mask[20:60, 5:30] = True
    lb = Letterbox.fit(37, 91, 128)
    boxed = torch.from_numpy(letterbox_mask(mask.astype(np.float32), lb))
    low = torch.nn.functional.avg_pool2d(boxed[None, None], 4)  # (1, 1, 32, 32)
    back = unletterbox(low, lb)
    assert back.shape == (91, 37) and float(back.min()) >= 0 and float(back.max()) <= 1
    assert _iou(back.numpy() > 0.5, mask) > 0.9


def test_unletterbox_rejects_batches_and_non_square() -> None:
    lb = Letterbox.fit(10, 5, 16)
    for shape in [(2, 1, 16, 16), (16, 8), (3, 16, 16)]:
        with pytest.raises(ValueError):
            unletterbox(torch.zeros(shape), lb)


def test_letterbox_geometry_and_padding() -> None:
    img = Image.new("RGB", (37, 91), (255, 0, 0))
    arr, lb = letterbox_image(img, 128)
    assert (lb.new_w, lb.new_h, lb.pad_left, lb.pad_top) == (52, 128, 38, 0)
    assert lb.scale == pytest.approx(128 / 91)
    assert arr.shape == (128, 128, 3) and arr.dtype == np.float32
    assert np.allclose(arr[:, :38], CLIP_MEAN) and np.allclose(arr[:, 90:], CLIP_MEAN)
    assert np.allclose(arr[:, 38:90], (1.0, 0.0, 0.0))
    normed = normalize(torch.from_numpy(arr).permute(2, 0, 1))
    assert torch.allclose(normed[:, :, :38], torch.zeros(3, 128, 38), atol=1e-6)  # padding -> 0
    expected_red = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert normed[0, 64, 64].item() == pytest.approx(expected_red, rel=1e-5)


def test_normalize_checks_channels() -> None:
    with pytest.raises(ValueError):
        normalize(torch.zeros(4, 2, 2))
    batch = normalize(torch.ones(2, 3, 2, 2), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert torch.equal(batch, torch.ones(2, 3, 2, 2))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    w=st.integers(1, 3000),
    h=st.integers(1, 3000),
    size=st.integers(1, 1024),
    shrink=st.floats(0.5, 1.0),
    sx=st.floats(0, 1),
    sy=st.floats(0, 1),
)
def test_letterbox_never_crops(w, h, size, shrink, sx, sy) -> None:
    lb = Letterbox.fit(w, h, size, shrink=shrink, shift=(sx, sy))
    assert 1 <= lb.new_w and 1 <= lb.new_h
    assert 0 <= lb.pad_left and lb.pad_left + lb.new_w <= size
    assert 0 <= lb.pad_top and lb.pad_top + lb.new_h <= size
    if shrink == 1.0:
        assert max(lb.new_w, lb.new_h) == size


def test_jittered_letterbox_keeps_the_whole_mask() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 70), bool)
    mask[:, :3] = True  # touching the border: a crop would cut it
    for _ in range(30):
        lb = jitter_letterbox(70, 40, 64, rng)
        boxed = letterbox_mask(mask, lb)
        rows = slice(lb.pad_top, lb.pad_top + lb.new_h)
        assert boxed[rows, lb.pad_left].all()  # the border column made it in, whole
        assert not boxed[:, : lb.pad_left].any() and not boxed[: lb.pad_top].any()
