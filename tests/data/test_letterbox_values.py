"""The inverse letterbox on the path that RefCOCO and the synthetic images take: the image was
shrunk on the way in, so the prediction is enlarged back bicubically, not by repeating pixels."""

from __future__ import annotations

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
