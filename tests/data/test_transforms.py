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


@pytest.mark.parametrize(("w", "h", "size"), [(0, 5, 4), (5, 0, 4), (5, 5, 0), (-1, 5, 4)])
def test_letterbox_refuses_any_one_non_positive_size(w: int, h: int, size: int) -> None:
    with pytest.raises(ValueError) as caught:
        Letterbox.fit(w, h, size)
    assert str(caught.value) == f"letterbox needs positive sizes, got {w}x{h} into {size}"


def test_an_extreme_aspect_ratio_keeps_one_pixel_on_its_short_side() -> None:
    # 1000 x 1 into 100: the short side rounds to 0.1 pixel, and is kept at 1, not more
    wide = Letterbox.fit(1000, 1, 100)
    assert (wide.new_w, wide.new_h, wide.pad_left, wide.pad_top) == (100, 1, 0, 49)
    tall = Letterbox.fit(1, 1000, 100)
    assert (tall.new_w, tall.new_h, tall.pad_left, tall.pad_top) == (1, 100, 49, 0)


def test_shift_places_the_content_horizontally_then_vertically() -> None:
    # content 10 x 20 in 40: 30 free columns, 20 free rows
    lb = Letterbox.fit(10, 20, 40, shrink=0.5, shift=(0.25, 1.0))
    assert (lb.new_w, lb.new_h, lb.pad_left, lb.pad_top) == (10, 20, 7, 20)


def test_letterbox_image_takes_a_given_placement_and_refuses_one_of_another_image() -> None:
    img = Image.new("RGB", (8, 4), (255, 255, 255))
    lb = Letterbox.fit(8, 4, 16, shrink=0.5, shift=(0.0, 1.0))  # 8 x 4 at the bottom left
    arr, used = letterbox_image(img, 16, lb=lb)
    assert used is lb
    assert np.allclose(arr[12:, :8], 1.0) and np.allclose(arr[:12], CLIP_MEAN)
    assert np.allclose(arr[:, 8:], CLIP_MEAN)
    for other, size in [(Image.new("RGB", (9, 4)), 16), (img, 32)]:
        with pytest.raises(ValueError) as caught:
            letterbox_image(other, size, lb=lb)
        assert str(caught.value) == (
            "letterbox Letterbox(size=16, orig_w=8, orig_h=4, new_w=8, new_h=4, pad_left=0, "
            f"pad_top=12) does not fit a {other.width}x{other.height} image")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_letterbox_image_makes_any_mode_three_channel_rgb(mode: str) -> None:
    img = Image.new("RGB", (5, 4), (102, 102, 102)).convert(mode)  # grey 0.4 in every mode
    arr, _ = letterbox_image(img, 5)
    assert arr.shape == (5, 5, 3)
    assert np.allclose(arr[:4], 0.4) and np.allclose(arr[4:], CLIP_MEAN)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32])
def test_letterbox_mask_keeps_the_mask_dtype(dtype: type) -> None:
    mask = np.ones((3, 4), dtype)
    boxed = letterbox_mask(mask, Letterbox.fit(4, 3, 8))
    assert boxed.dtype == dtype
    assert boxed.sum() == 8 * 6 and not boxed[0].any() and not boxed[7].any()


def test_letterbox_mask_refuses_a_mask_of_another_shape_naming_both() -> None:
    with pytest.raises(ValueError) as caught:
        letterbox_mask(np.ones((4, 3), bool), Letterbox.fit(4, 3, 8))
    assert str(caught.value) == "mask shape (4, 3) differs from letterbox 3x4"


@pytest.mark.parametrize(("mean", "std"), [((0.5,) * 3, (0.5,) * 2), ((0.5,) * 2, (0.5,) * 3)])
def test_normalize_refuses_mean_or_std_of_another_length_alone(
        mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    with pytest.raises(ValueError) as caught:
        normalize(torch.zeros(3, 2, 2), mean, std)
    assert str(caught.value) == f"mean/std have {len(mean)}/{len(std)} values for 3 channels"


@pytest.mark.parametrize("std", [(0.5, 0.0, 0.5), (0.5, 0.5, -0.5)])
def test_normalize_refuses_a_zero_or_negative_std(std: tuple[float, ...]) -> None:
    with pytest.raises(ValueError) as caught:
        normalize(torch.zeros(3, 2, 2), (0.5,) * 3, std)
    assert str(caught.value) == f"std must be positive, got {list(std)}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_normalize_computes_in_the_image_dtype(dtype: torch.dtype) -> None:
    """mean and std are taken in the image's dtype: float64 keeps all its digits (float32
    constants would round 0.1 and 0.3), half precision stays half instead of being promoted."""
    image = torch.linspace(0, 1, 12, dtype=dtype).reshape(3, 2, 2)
    mean, std = (0.1, 0.2, 0.3), (0.3, 0.7, 0.9)
    expected = ((image - torch.tensor(mean, dtype=dtype).view(-1, 1, 1))
                / torch.tensor(std, dtype=dtype).view(-1, 1, 1))
    out = normalize(image, mean, std)
    assert out.dtype == dtype and torch.equal(out, expected)


def test_normalize_follows_the_image_device_not_the_default_device() -> None:
    # a caller that set another default device (torch.set_default_device) still gets its
    # image's device: the meta device stands in for an accelerator on a CPU-only machine
    image = torch.ones(3, 2, 2)
    with torch.device("meta"):
        out = normalize(image, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert out.device == image.device and torch.equal(out, torch.full((3, 2, 2), 2.0))
