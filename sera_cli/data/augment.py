"""Augmentation that keeps the expression true.

It must not make the expression false: no crop (it could cut out the target or change which
object is "leftmost"), only a slight shrink and shift *inside* the letterbox; colour jitter only
when the sentence names no colour or brightness; a horizontal flip only together with swapping
"left" and "right" in the sentence.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageEnhance

from sera_cli.data.transforms import Letterbox

#: Words whose meaning colour or brightness jitter could change.
COLOUR_WORDS = frozenset(
    """red green blue yellow orange purple violet pink brown black white gray grey silver gold
    golden beige tan maroon navy teal cyan magenta turquoise cream blond blonde dark darker
    darkest light lighter lightest bright brighter brightest pale color colour colored coloured
    reddish greenish bluish blueish yellowish pinkish brownish grayish greyish whitish blackish
    orangish""".split()
)
_LEFT_RIGHT = re.compile(r"\b(left|right)(?=(?:most|ward|wards|side|hand)?\b)", re.IGNORECASE)


def has_colour_words(sentence: str) -> bool:
    """Whether the sentence names a colour or a brightness (which colour jitter could falsify)."""
    return any(w in COLOUR_WORDS for w in re.findall(r"[a-z]+", sentence.lower()))


def swap_left_right(sentence: str) -> str:
    """'left' <-> 'right' (also leftmost, leftward, leftside, lefthand), keeping letter case."""

    def swap(m: re.Match[str]) -> str:
        word = m.group(1)
        new = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return new.upper()
        return new.capitalize() if word[0].isupper() else new

    return _LEFT_RIGHT.sub(swap, sentence)


def hflip_sample(
    image: Image.Image, mask: np.ndarray, sentence: str
) -> tuple[Image.Image, np.ndarray, str]:
    """Mirror image and mask and swap left/right words, so that the sentence stays true."""
    flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return flipped, np.ascontiguousarray(mask[:, ::-1]), swap_left_right(sentence)


def colour_jitter(
    image: Image.Image, rng: np.random.Generator, strength: float = 0.2
) -> Image.Image:
    """Random brightness, contrast and saturation within 1 +- strength (hue is left alone)."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(1 - strength, 1 + strength)))
    return image


def jitter_letterbox(
    width: int, height: int, size: int, rng: np.random.Generator, max_shrink: float = 0.15
) -> Letterbox:
    """A letterbox shrunk by up to `max_shrink` and shifted at random, never cropping content."""
    shrink = float(rng.uniform(1 - max_shrink, 1.0))
    shift = (float(rng.uniform()), float(rng.uniform()))
    return Letterbox.fit(width, height, size, shrink=shrink, shift=shift)


def augment_sample(
    image: Image.Image, mask: np.ndarray, sentence: str, rng: np.random.Generator
) -> tuple[Image.Image, np.ndarray, str]:
    """Augmentation that keeps the expression true: flip with word swap, colour jitter."""
    if rng.uniform() < 0.5:
        image, mask, sentence = hflip_sample(image, mask, sentence)
    if not has_colour_words(sentence):
        image = colour_jitter(image, rng)
    return image, mask, sentence
