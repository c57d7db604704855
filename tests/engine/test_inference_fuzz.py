"""Fuzzing the predict path: any bytes as an image, any string as an expression. Every outcome is
a mask of the image's size or a SeraError; nothing else may escape."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from sera_cli.data.images import load_image
from sera_cli.data.tokenize import EOT_ID, SOT_ID, tokenize
from sera_cli.engine.inference import Prediction, Predictor
from sera_cli.errors import SeraError

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> Predictor:
    return Predictor(trained_run)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "input.img"


# (format, mode) pairs Pillow writes; each decodes to some mode the loader must turn into RGB
ENCODINGS = [("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "L"), ("PNG", "LA"), ("PNG", "P"),
             ("PNG", "1"), ("PNG", "I;16"), ("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"),
             ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGBA"), ("TIFF", "F"), ("TIFF", "I"),
             ("TIFF", "CMYK"), ("WEBP", "RGB"), ("PPM", "RGB"), ("ICO", "RGBA"), ("TGA", "RGBA")]


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    """A real image file, then maybe damaged: cut short or with bytes overwritten."""
    fmt, mode = draw(st.sampled_from(ENCODINGS))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    gray = pixels[..., 0]
    image = {"I;16": lambda: Image.fromarray(gray.astype(np.uint16) * 257),
             "I": lambda: Image.fromarray(gray.astype(np.int32) * 257),
             "F": lambda: Image.fromarray(gray.astype(np.float32) / 255),
             }.get(mode, lambda: Image.fromarray(pixels, "RGBA").convert(mode))()
    assert image.mode == mode
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "cut", "overwrite"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "overwrite":
        at = draw(st.integers(0, len(data) - 1))
        patch = draw(st.binary(min_size=1, max_size=16))
        data = data[:at] + patch + data[at + len(patch):]
    return data


IMAGE_BYTES = st.one_of(st.binary(max_size=512), encoded_images())
EXPRESSIONS = st.text(max_size=120)


def _usable(path: Path, expression: str) -> bool:
    """Whether the loader and the tokenizer accept this input (each raising SeraError if not)."""
    try:
        load_image(path)
        tokenize([expression], 17)
    except SeraError:
        return False
    return True


def _check(predictor: Predictor, path: Path, expression: str) -> None:
    """An input the loader and tokenizer accept must give a mask of the image's size; any other
    must give a SeraError (never another exception)."""
    usable = _usable(path, expression)
    try:
        prediction = predictor(path, expression)
    except SeraError as exc:
        assert not usable, f"a usable input was refused: {exc}"
        assert "Traceback" not in str(exc)
        event(f"SeraError: {' '.join(str(exc).split()[:3])}")
        return
    assert usable, "an input the loader or tokenizer refuses gave a mask"
    event("mask")
    assert isinstance(prediction, Prediction)
    width, height = load_image(path).size
    assert prediction.mask.shape == (height, width) and prediction.mask.dtype == bool
    assert prediction.probability.shape == (height, width)
    assert np.isfinite(prediction.probability).all()
    assert prediction.probability.min() >= 0 and prediction.probability.max() <= 1


@FUZZ
@given(data=IMAGE_BYTES)
def test_any_bytes_as_an_image_give_a_mask_or_a_clean_error(predictor: Predictor,
                                                            image_file: Path,
                                                            data: bytes) -> None:
    image_file.write_bytes(data)
    _check(predictor, image_file, "the red circle on the left")


@FUZZ
@given(expression=EXPRESSIONS)
def test_any_string_as_an_expression_gives_a_mask_or_a_clean_error(predictor: Predictor,
                                                                   image_file: Path,
                                                                   expression: str) -> None:
    Image.new("RGB", (37, 23), (120, 30, 200)).save(image_file, format="PNG")
    _check(predictor, image_file, expression)


@FUZZ
@given(data=encoded_images(), expression=EXPRESSIONS)
def test_damaged_images_with_any_expression(predictor: Predictor, image_file: Path, data: bytes,
                                            expression: str) -> None:
    image_file.write_bytes(data)
    _check(predictor, image_file, expression)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(expression=st.text(max_size=200) | st.lists(
    st.sampled_from(["<start_of_text>", "<end_of_text>", "&lt;end_of_text&gt;", "&amp;lt;",
                     "<|endoftext|>", "\x00", "\u200b", "😀", "left", " "]),
    max_size=30).map("".join))
def test_tokens_always_start_and_end_once(expression: str) -> None:
    """The model reads the sentence at the argmax id (end of text): a user's text never holds a
    special id, however it is written, and a cut keeps the end."""
    try:
        ids = tokenize([expression], 17)[0].tolist()
    except SeraError as exc:
        assert "empty referring expression" in str(exc)
        return
    real = [t for t in ids if t != 0]
    assert real[0] == SOT_ID and real[-1] == EOT_ID
    assert real.count(SOT_ID) == 1 and real.count(EOT_ID) == 1
    assert ids[len(real):] == [0] * (17 - len(real))
