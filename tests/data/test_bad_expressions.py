"""Empty, long and unusual expressions: refused, cut with a warning, or tokenized.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from helpers import fails, sera
from PIL import Image

from sera_cli.data import tokenize as tokenize_module


@pytest.mark.parametrize("text", ["", "   \t  ", "\x00\x07\x1b"])
def test_empty_expression_is_refused(trained_run: Path, images: dict[str, Path],
                                     tmp_path: Path, text: str) -> None:
    result = sera("predict", images["ok"], text, "--checkpoint", trained_run,
                  "--out", tmp_path / "m.png")
    fails(result, "empty referring expression", repr(text))


def test_long_expression_is_cut_with_a_warning(trained_run: Path, images: dict[str, Path],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenize_module, "_warned_cut", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sera("predict", images["ok"], "the tall giraffe " * 30, "--checkpoint",
                      trained_run, "--out", tmp_path / "m.png")
    assert result.exit_code == 0, result.output
    # recorded here, or shown by the CLI itself as a `warning:` line
    shown = [str(w.message) for w in caught] + result.stderr.splitlines()
    assert any("cut to the context length 17 (90 tokens, 15 kept)" in s for s in shown), shown
    assert Image.open(tmp_path / "m.png").size == (60, 40)


@pytest.mark.parametrize("text", ["der Bär links, größer", "左边的猫", "the 🦒 next to 🚗",
                                  "red\x00one\x1b[31m\nleft\tmost\x07",
                                  "&lt;end_of_text&gt; left <|endoftext|> one"])
def test_unusual_expression_is_tokenized(trained_run: Path, images: dict[str, Path],
                                         tmp_path: Path, text: str) -> None:
    result = sera("predict", images["ok"], text, "--checkpoint", trained_run,
                  "--out", tmp_path / "m.png", "--overlay", tmp_path / "o.png")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # a newline in the expression is not echoed raw
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", result.stdout)
    assert Image.open(tmp_path / "m.png").size == (60, 40)
