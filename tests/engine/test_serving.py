"""`sera serve`'s prediction function (`Segmenter.answer`), without gradio or a browser: the
page's values are `sera predict`'s, and every bad input becomes a one-line message."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sera_cli.cli.main import app
from sera_cli.data.synth import EXPRESSION_TYPES
from sera_cli.engine.inference import Prediction, Predictor
from sera_cli.engine.serving import MAX_EXPRESSION_CHARS, Segmenter, example_inputs
from sera_cli.errors import SeraError


@pytest.fixture(scope="module")
def segmenter(trained_run: Path) -> Segmenter:
    return Segmenter(trained_run, device="cpu")


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    return example_inputs(tmp_path_factory.mktemp("examples"))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` and holds no pixels: what a decompression
    bomb looks like to a reader that checks the header, made in no time."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_examples_are_synthetic_images_with_one_expression_type_each(
        examples: list[tuple[Path, str]]) -> None:
    assert len(examples) == len(EXPRESSION_TYPES)
    assert len({path for path, _ in examples}) == len(examples)
    assert all(path.is_file() and text for path, text in examples)


@pytest.mark.parametrize("threshold", [None, 0.6])
def test_answer_is_what_sera_predict_writes(segmenter: Segmenter, trained_run: Path,
                                            examples: list[tuple[Path, str]], tmp_path: Path,
                                            threshold: float | None) -> None:
    image, expression = examples[0]
    answer = segmenter.answer(image, expression, threshold)
    assert answer.ok, answer.message
    size = Image.open(image).size
    assert answer.mask.size == answer.overlay.size == size and answer.mask.mode == "L"

    out = tmp_path / "mask.png"
    args = ["predict", str(image), expression, "--checkpoint", str(trained_run), "--out",
            str(out)] + ([] if threshold is None else ["--threshold", str(threshold)])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(answer.mask), np.asarray(Image.open(out)))

    expected = Predictor(trained_run, threshold=threshold)(image, expression)
    used = segmenter.default_threshold if threshold is None else threshold
    assert answer.summary == {**expected.summary(), "threshold": used}
    assert answer.message.startswith(f"mask: {answer.summary['area']} px")
    rows = {(r["router"], r["expert"]): r["weight"] for r in answer.routing}
    assert rows == {(router, expert): weight for router, gates in expected.routing.items()
                    for expert, weight in gates.items()}
    assert answer.routing[0]["router"] == "fusion"  # the paper's router first


def test_an_empty_mask_says_what_to_try(segmenter: Segmenter,
                                        examples: list[tuple[Path, str]]) -> None:
    answer = segmenter.answer(*examples[0], threshold=0.999)
    assert answer.ok and answer.summary["area"] == 0 and answer.summary["box"] is None
    assert "lower it" in answer.message


def test_a_no_target_answer_says_so(segmenter: Segmenter, examples: list[tuple[Path, str]],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    image, expression = examples[0]
    found = segmenter.predictor(image, expression)
    nothing = replace(found, mask=np.zeros_like(found.mask), no_target=True,
                      no_target_probability=0.93)

    class FindsNothing:  # a Predictor whose no-target head fires
        threshold = segmenter.default_threshold

        def __call__(self, *_: object) -> Prediction:
            return nothing

    monkeypatch.setattr(segmenter, "predictor", FindsNothing())
    answer = segmenter.answer(image, expression)
    assert answer.ok and answer.summary["no_target"] and answer.summary["area"] == 0
    assert answer.message.startswith("no target:") and "0.93" in answer.message


def bad_inputs(folder: Path, good: Path) -> dict[str, tuple[Path | None, str, str]]:
    """name -> (image, expression, words the message must contain)."""
    not_image = folder / "notes.png"
    not_image.write_text("not an image")
    huge = png_header_only(folder / "huge.png", 10_000, 10_000)
    return {
        "no image": (None, "the red circle", "no image"),
        "missing file": (folder / "gone.png", "the red circle", "not found"),
        "not an image": (not_image, "the red circle", "not an image"),
        "10000x10000": (huge, "the red circle", "too large to decode safely"),
        "empty expression": (good, "", "empty referring expression"),
        "blank expression": (good, " \t ", "empty referring expression"),
        "5000 characters": (good, "the red circle " * 333 + "ab",
                            f"at most {MAX_EXPRESSION_CHARS} characters"),
    }


def test_bad_inputs_become_one_line_messages_and_serving_goes_on(
        segmenter: Segmenter, examples: list[tuple[Path, str]], tmp_path: Path) -> None:
    good, expression = examples[0]
    for name, (image, text, words) in bad_inputs(tmp_path, good).items():
        answer = segmenter.answer(image, text, image_name="upload.png")
        assert not answer.ok and answer.overlay is None and answer.summary is None, name
        assert words in answer.message and "\n" not in answer.message, (name, answer.message)
        assert str(tmp_path) not in answer.message, "the visitor's file name, not ours"
        assert segmenter.answer(good, expression).ok, f"still serving after {name}"


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5])
def test_a_threshold_out_of_range_is_a_message(segmenter: Segmenter, threshold: float,
                                               examples: list[tuple[Path, str]]) -> None:
    answer = segmenter.answer(*examples[0], threshold=threshold)
    assert not answer.ok and "between 0 and 1" in answer.message


@pytest.mark.parametrize("precision,words", [("fp16", "not one of auto, fp32, bf16"),
                                             ("bf16", "--precision bf16 needs")])
def test_a_precision_that_cannot_run_is_refused_before_the_load(
        trained_run: Path, precision: str, words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sera_cli.engine.devices.fast_bf16", lambda device: False)
    monkeypatch.setattr("sera_cli.runs.checkpoints.load_run",
                        lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(SeraError, match=words):
        Segmenter(trained_run, device="cpu", precision=precision)
