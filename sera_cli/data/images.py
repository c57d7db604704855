"""Image files decoded as plain 8-bit RGB, or refused with a one-line reason."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from sera_cli.errors import SeraError


def load_image(path: str | Path, *, exif: bool = True) -> Image.Image:
    """Decode an image file as 8-bit RGB, refusing anything that is not a plain, sane image.

    `exif=True` turns the pixels the way a viewer shows them (what a user means by "left" in a
    photo). Grayscale, CMYK, palette and 16-bit images become RGB, transparent ones are laid on
    white, animated images give their first frame. Images above Pillow's decompression-bomb limit
    (`PIL.Image.MAX_IMAGE_PIXELS`) are refused from their header, before any pixel is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise SeraError(f"image not found: {path}" if not path.exists() else f"not a file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                return _to_rgb(ImageOps.exif_transpose(opened) if exif else opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SeraError(
            f"{path} is too large to decode safely (more than {Image.MAX_IMAGE_PIXELS} pixels, "
            "Pillow's decompression-bomb limit); downscale the image first"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise SeraError(
            f"cannot read image {path}: {e}; the file is truncated, corrupt or not an image"
        ) from None


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any decoded mode to RGB, rescaling 16-bit data rather than clipping it."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F" and a.size and float(a.max()) <= 1.0:
            a = a * 255.0
        elif im.mode != "F":
            a = a / 257.0  # 0..65535 -> 0..255
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")
