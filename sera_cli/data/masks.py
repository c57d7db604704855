"""COCO segmentations (polygons, uncompressed or compressed RLE) as boolean masks, and the checks
that keep a malformed one from being read as a mask of the wrong shape."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _rle_string_counts(s: str) -> list[int]:
    """Run lengths of a compressed COCO RLE string (pycocotools' `rleFrString`, in Python).

    pycocotools decodes into a buffer of the declared size; checking the total ourselves keeps a
    malformed file from being read as a mask of the wrong shape.
    """
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            if p >= len(s):
                raise ValueError("RLE string ends inside a number")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE string has an invalid character {s[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def segmentation_problem(seg: Any, height: int, width: int) -> str | None:
    """Why a COCO segmentation cannot be decoded at (height, width), or None when it can."""
    if isinstance(seg, list):
        if not seg:
            return "empty polygon list"
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                return "a polygon needs an even number (>= 6) of coordinates"
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in poly
            ):
                return "polygon coordinates must be finite numbers"
        return None
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return "segmentation is neither a polygon list nor an RLE dict"
    if list(seg["size"]) != [height, width]:
        return f"RLE size {seg['size']} differs from the image's [{height}, {width}]"
    counts = seg["counts"]
    try:
        if isinstance(counts, bytes):
            counts = _rle_string_counts(counts.decode("ascii"))
        elif isinstance(counts, str):
            counts = _rle_string_counts(counts)
    except (ValueError, UnicodeDecodeError) as e:
        return f"bad compressed RLE: {e}"
    if not isinstance(counts, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts
    ):
        return "RLE counts must be non-negative integers"
    if sum(counts) != height * width:
        return f"RLE counts cover {sum(counts)} pixels, the image has {height * width}"
    return None


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask from a COCO polygon list, uncompressed RLE or compressed RLE.

    Polygons are rasterized by pycocotools; run lengths are expanded here, with numpy, which also
    keeps pycocotools' decoder (and its numpy-2 deprecation warning) out of every training step.
    """
    if isinstance(seg, list):
        from pycocotools import mask as mask_utils

        seg = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = _rle_string_counts(counts)
    # runs alternate background, foreground, ... over pixels in column-major order
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return np.ascontiguousarray(flat.reshape(width, height).T)
