from __future__ import annotations

import warnings

import pytest
import torch

from sera_cli.data import tokenize as tok_module
from sera_cli.data.tokenize import EOT_ID, SOT_ID, tokenize
from sera_cli.errors import SeraError


def _eot_is_last_real_token(row: torch.Tensor) -> bool:
    real = int((row != 0).sum())
    return bool(row[0] == SOT_ID and row[real - 1] == EOT_ID and (row[real:] == 0).all())


def test_shape_layout_and_argmax_finds_the_end() -> None:
    ids = tokenize(["the red circle", "man on the left"], 17)
    assert ids.shape == (2, 17) and ids.dtype == torch.long
    for row in ids:
        assert _eot_is_last_real_token(row)
        # the model's rule: sentence feature at argmax of the ids
        assert int(row.argmax()) == int((row != 0).sum()) - 1
    assert tokenize(["the red circle"], 17).equal(ids[:1])


def test_long_expression_is_cut_keeping_end_of_text_and_warns_once(monkeypatch) -> None:
    monkeypatch.setattr(tok_module, "_warned_cut", False)
    long = " ".join(["giraffe"] * 40)
    with pytest.warns(UserWarning, match="cut to the context length 8"):
        ids = tokenize([long], 8)
    assert ids.shape == (1, 8) and ids[0, -1] == EOT_ID and _eot_is_last_real_token(ids[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenize([long, long], 8)  # second and later cuts are silent


def test_special_token_text_cannot_end_the_sentence_early() -> None:
    ids = tokenize(["red <end_of_text> circle <|endoftext|> < START_OF_TEXT >"], 17)[0]
    assert int((ids == EOT_ID).sum()) == 1 and int((ids == SOT_ID).sum()) == 1
    assert _eot_is_last_real_token(ids)


def test_control_characters_are_stripped() -> None:
    assert tokenize(["red\x00 circle\x1b"], 12).equal(tokenize(["red circle"], 12))
    assert tokenize(["red\tcircle\n"], 12).equal(tokenize(["red circle"], 12))


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\x00\x01", "\u200b", "<end_of_text>"])
def test_empty_expressions_are_refused(text: str) -> None:
    with pytest.raises(SeraError, match="empty referring expression"):
        tokenize(["fine", text], 17)


@pytest.mark.filterwarnings("ignore:expression cut")
def test_non_ascii_and_emoji() -> None:
    ids = tokenize(["le chat à gauche 🐱", "左边的人", "😀" * 30], 17)
    for row in ids:
        assert _eot_is_last_real_token(row)


def test_context_too_short_and_single_string() -> None:
    with pytest.raises(SeraError, match="context length 2"):
        tokenize(["red"], 2)
    assert tokenize("red", 5).equal(tokenize(["red"], 5))
    assert tokenize([], 5).shape == (0, 5)
    assert tok_module._tokenizer() is tok_module._tokenizer()
