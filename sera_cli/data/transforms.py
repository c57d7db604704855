"""Letterboxing in and out of the square model input, and normalization.

Geometry: the longest image side is resized to the input side S, the aspect ratio is kept, and
the content is *centered* in the S x S square (as CRIS/DETRIS do), the padding filled with the
normalization mean so that it normalizes to zero. `Letterbox` records the mapping so that a
prediction is put back onto the original pixels by `unletterbox`.

Masks go forward with nearest-neighbour sampling at pixel centers, and come back the same way
when the image was enlarged: forward and back then return the original mask exactly. When the
image was shrunk, the way back is bicubic (a genuine upsampling) and small details lost on the way
in stay lost.

Augmentation, which places the content by a jittered `Letterbox`, is in `augment.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sera_cli.config import CLIP_MEAN, CLIP_STD  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Letterbox:
    """Where an original (orig_w x orig_h) image sits inside the size x size model input."""

    size: int
    orig_w: int
    orig_h: int
    new_w: int
    new_h: int
    pad_left: int
    pad_top: int

    @property
    def scale(self) -> float:
        """Resize factor of the longest side (the other side is rounded to whole pixels)."""
        return max(self.new_w, self.new_h) / max(self.orig_w, self.orig_h)

    @classmethod
    def fit(
        cls,
        width: int,
        height: int,
        size: int,
        *,
        shrink: float = 1.0,
        shift: tuple[float, float] = (0.5, 0.5),
    ) -> Letterbox:
        """Letterbox of a width x height image into size x size.

        `shrink` (0, 1] makes the longest side `round(size * shrink)` instead of `size`, and
        `shift` places the content within the free space (0 = left/top, 0.5 = centered).
        """
        if width < 1 or height < 1 or size < 1:
            raise ValueError(f"letterbox needs positive sizes, got {width}x{height} into {size}")
        longest = max(1, round(size * shrink))
        scale = longest / max(width, height)
        new_w = min(longest, max(1, round(width * scale)))
        new_h = min(longest, max(1, round(height * scale)))
        pad_left = int((size - new_w) * shift[0])
        pad_top = int((size - new_h) * shift[1])
        return cls(size, width, height, new_w, new_h, pad_left, pad_top)


def letterbox_image(
    img: Image.Image,
    size: int,
    *,
    lb: Letterbox | None = None,
    fill: Sequence[float] = CLIP_MEAN,
) -> tuple[np.ndarray, Letterbox]:
    """(size, size, 3) float32 image in [0, 1] and its Letterbox; `lb` overrides the placement."""
    if lb is None:
        lb = Letterbox.fit(img.width, img.height, size)
    elif (lb.orig_w, lb.orig_h, lb.size) != (img.width, img.height, size):
        raise ValueError(f"letterbox {lb} does not fit a {img.width}x{img.height} image")
    resized = img.convert("RGB").resize((lb.new_w, lb.new_h), Image.Resampling.BICUBIC)
    out = np.empty((size, size, 3), dtype=np.float32)
    out[:] = np.asarray(fill, dtype=np.float32)
    content = np.asarray(resized, dtype=np.float32) / 255.0
    out[lb.pad_top : lb.pad_top + lb.new_h, lb.pad_left : lb.pad_left + lb.new_w] = content
    return out, lb


def _nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each output pixel center: floor((i + 0.5) * n_in / n_out), in integers."""
    return (2 * np.arange(n_out, dtype=np.int64) + 1) * n_in // (2 * n_out)


def letterbox_mask(mask: np.ndarray, lb: Letterbox) -> np.ndarray:
    """(H, W) mask -> (size, size) mask of the same dtype, zero outside the content."""
    if mask.shape != (lb.orig_h, lb.orig_w):
        raise ValueError(f"mask shape {mask.shape} differs from letterbox {lb.orig_h}x{lb.orig_w}")
    rows = _nearest_index(lb.new_h, lb.orig_h)
    cols = _nearest_index(lb.new_w, lb.orig_w)
    out = np.zeros((lb.size, lb.size), dtype=mask.dtype)
    out[lb.pad_top : lb.pad_top + lb.new_h, lb.pad_left : lb.pad_left + lb.new_w] = mask[
        rows[:, None], cols[None, :]
    ]
    return out


def unletterbox(prob: torch.Tensor, lb: Letterbox) -> torch.Tensor:
    """Probabilities over the model input, (R, R) or (1, 1, R, R) -> (orig_h, orig_w) in [0, 1].

    R may be lower than the input side (a decoder's output): it is first brought to the input
    side by bicubic interpolation, then the padding is cropped and the content resized to the
    original size (nearest when it was enlarged on the way in, so the round trip is exact;
    bicubic when it was shrunk). Batches are inverted one sample at a time: each sample has its
    own letterbox.
    """
    if (
        prob.dim() not in (2, 4)
        or prob.shape[-1] != prob.shape[-2]
        or prob.numel() != (prob.shape[-1] ** 2)
    ):
        raise ValueError(f"unletterbox takes (R, R) or (1, 1, R, R), got {tuple(prob.shape)}")
    p = prob.detach().float().reshape(1, 1, prob.shape[-2], prob.shape[-1])
    if p.shape[-1] != lb.size:
        shrinking = p.shape[-1] > lb.size
        p = F.interpolate(
            p, size=(lb.size, lb.size), mode="bicubic", align_corners=False, antialias=shrinking
        )
    # (1, 1, S, S) -> (1, 1, new_h, new_w)
    p = p[..., lb.pad_top : lb.pad_top + lb.new_h, lb.pad_left : lb.pad_left + lb.new_w]
    if (lb.new_h, lb.new_w) == (lb.orig_h, lb.orig_w):
        out = p[0, 0]
    elif lb.new_w >= lb.orig_w and lb.new_h >= lb.orig_h:
        rows = torch.from_numpy(_nearest_index(lb.orig_h, lb.new_h)).to(p.device)
        cols = torch.from_numpy(_nearest_index(lb.orig_w, lb.new_w)).to(p.device)
        out = p[0, 0][rows[:, None], cols[None, :]]
    else:
        out = F.interpolate(p, size=(lb.orig_h, lb.orig_w), mode="bicubic", align_corners=False)
        out = out[0, 0]
    return out.clamp(0.0, 1.0)


def normalize(
    image: torch.Tensor, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD
) -> torch.Tensor:
    """(..., C, H, W) in [0, 1] -> (x - mean) / std per channel."""
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device)
    if m.numel() != image.shape[-3] or s.numel() != image.shape[-3]:
        raise ValueError(
            f"mean/std have {m.numel()}/{s.numel()} values for {image.shape[-3]} channels"
        )
    if bool((s <= 0).any()):
        raise ValueError(f"std must be positive, got {list(std)}")
    return (image - m.view(-1, 1, 1)) / s.view(-1, 1, 1)
