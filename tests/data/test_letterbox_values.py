"""The inverse letterbox on the path that RefCOCO and the synthetic images take: the image was
shrunk on the way in, so the prediction is enlarged back bicubically, not by repeating pixels."""

from __future__ import annotations

import pytest
import torch

from sera_cli.data.transforms import Letterbox, unletterbox


def test_shrunk_image_prediction_comes_back_smooth() -> None:
    lb = Letterbox.fit(640, 480, 128)  # content 128 x 96, 16 rows of padding above and below
    assert (lb.new_w, lb.new_h, lb.pad_top) == (128, 96, 16)
    ramp = torch.linspace(0.1, 0.9, 128).expand(128, 128).clone()  # left to right
    back = unletterbox(ramp, lb)
    assert back.shape == (480, 640)
    row = back[240, 20:-20]
    steps = row[1:] - row[:-1]
    # bicubic keeps a ramp a ramp: every step the same small size; nearest would give 128
    # flat runs of 5 pixels and jumps between them
    assert torch.unique(row).numel() > 500
    assert float(steps.min()) > 0 and float(steps.max()) < 2 * float(steps.mean())
    expected = torch.nn.functional.interpolate(
        ramp[None, None, 16:112, :], size=(480, 640), mode="bicubic", align_corners=False)[0, 0]
    assert torch.allclose(back, expected.clamp(0, 1), atol=1e-6)


def _noise(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def test_a_low_resolution_prediction_is_upsampled_bicubically_with_pixel_centres() -> None:
    lb = Letterbox.fit(30, 40, 40)  # content 30 x 40 at its own size, 5 columns of padding
    low = _noise(10, 10)
    expected = torch.nn.functional.interpolate(
        low[None, None], size=(40, 40), mode="bicubic", align_corners=False)[0, 0, :, 5:35]
    assert torch.equal(unletterbox(low, lb), expected.clamp(0, 1))


def test_a_prediction_finer_than_the_input_is_brought_down_with_antialiasing() -> None:
    lb = Letterbox.fit(30, 40, 40)
    fine = _noise(1, 1, 160, 160)
    expected = torch.nn.functional.interpolate(
        fine, size=(40, 40), mode="bicubic", align_corners=False, antialias=True)[0, 0, :, 5:35]
    assert torch.allclose(unletterbox(fine, lb), expected.clamp(0, 1), atol=1e-6)
    # any side is brought to the input side first: 2 x 2 onto a 1 x 1 input averages
    one = unletterbox(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), Letterbox.fit(1, 1, 1))
    assert one.shape == (1, 1) and float(one) == 0.5


def test_an_image_shrunk_along_one_side_only_comes_back_bicubically() -> None:
    """1000 x 3 into 999: the rows keep their 3 pixels, the columns lose one; since the content
    was not enlarged on both sides, the way back is bicubic, not nearest."""
    lb = Letterbox.fit(1000, 3, 999)
    assert (lb.new_w, lb.new_h, lb.pad_top) == (999, 3, 498)
    prob = _noise(999, 999)
    expected = torch.nn.functional.interpolate(
        prob[None, None, 498:501, :], size=(3, 1000), mode="bicubic", align_corners=False)[0, 0]
    assert torch.equal(unletterbox(prob, lb), expected.clamp(0, 1))


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 1, 1, 16, 16), (1, 2, 8, 16), (16, 8),
                                   (2, 1, 16, 16)])
def test_only_one_square_prediction_is_taken_and_the_error_names_its_shape(
        shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError) as caught:
        unletterbox(torch.zeros(shape), Letterbox.fit(16, 8, 16))
    assert str(caught.value) == f"unletterbox takes (R, R) or (1, 1, R, R), got {shape}"
