"""Referring expressions -> CLIP token ids, with the end-of-text token kept last.

The model reads the sentence feature at the argmax of the token ids, which is the end-of-text id
(49407, the largest in the vocabulary). So an expression cut to the context length must still end
with it, and a user's text must not be able to smuggle the special tokens in. open_clip's
`SimpleTokenizer` ships its BPE vocabulary, so this works offline.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from sera_cli.errors import SeraError

if TYPE_CHECKING:
    import torch
    from open_clip.tokenizer import SimpleTokenizer

SOT_ID = 49406
EOT_ID = 49407
_PRIVATE_TOKENIZER = "_sera_open_clip_tokenizer"  # sys.modules name of the file loaded alone
# The tokenizer turns these literal strings into the special ids; case-insensitively.
_SPECIAL_TEXT = re.compile(r"<\s*(start|end)_of_text\s*>", re.IGNORECASE)
_warned_cut = False


@functools.lru_cache(maxsize=1)
def _tokenizer() -> SimpleTokenizer:
    """One tokenizer per process: building it parses the 49k-merge BPE file (~0.3 s)."""
    return _tokenizer_module().SimpleTokenizer()


def _tokenizer_module() -> ModuleType:
    """open_clip's ``tokenizer`` module (its code and BPE file), without the package.

    ``import open_clip.tokenizer`` runs the package's ``__init__``, which imports every model,
    torchvision and ``torch._dynamo``: seconds of a cold `sera predict` for a module that needs
    none of them. The file imports nothing from its package, so it is loaded on its own, under
    a private name; where open_clip is imported already, its own copy is used."""
    if "open_clip.tokenizer" in sys.modules:
        return sys.modules["open_clip.tokenizer"]
    if _PRIVATE_TOKENIZER in sys.modules:
        return sys.modules[_PRIVATE_TOKENIZER]
    package = importlib.util.find_spec("open_clip")  # finds, does not import
    if package is None or not package.submodule_search_locations:
        raise SeraError("open_clip is not installed: pip install open_clip_torch")
    path = Path(next(iter(package.submodule_search_locations))) / "tokenizer.py"
    spec = importlib.util.spec_from_file_location(_PRIVATE_TOKENIZER, path)
    if spec is None or spec.loader is None:
        raise SeraError(f"cannot load open_clip's tokenizer from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE_TOKENIZER] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PRIVATE_TOKENIZER]
        raise
    return module


def clean_expression(text: str) -> str:
    """Control characters become spaces and special-token text is removed; whitespace collapses."""
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return " ".join(_SPECIAL_TEXT.sub(" ", text).split())


def _token_ids(cleaned: str) -> list[int]:
    """The BPE ids of a cleaned expression, without special ids. The tokenizer unescapes HTML
    entities after our cleaning ("&lt;end_of_text&gt;"), so special ids are also dropped from
    its output."""
    return [t for t in _tokenizer().encode(cleaned) if t not in (SOT_ID, EOT_ID)] if cleaned \
        else []


def warn_cut(texts: Sequence[str], context_length: int, where: str) -> int:
    """How many of ``texts`` `tokenize` will cut to ``context_length``; when any, one warning
    says how many, and the per-expression warning of this process stays silent."""
    global _warned_cut
    room = context_length - 2
    cut = sum(len(_token_ids(clean_expression(text))) > room for text in texts)
    if cut:
        _warned_cut = True
        warnings.warn(f"{cut} of {len(texts)} expressions in {where} are longer than the "
                      f"context length {context_length} and are cut to it (set by "
                      "--context-length when training)", stacklevel=2)
    return cut


def tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    """(N, context_length) int64 ids: start-of-text, the expression's tokens, end-of-text, zeros.

    An expression longer than the context is cut (a warning, once per process, says so, unless
    `warn_cut` already counted them) and still ends with end-of-text. An empty expression raises
    SeraError: there is nothing to find.
    """
    import torch

    global _warned_cut
    if isinstance(texts, str):
        texts = [texts]
    if context_length < 3:
        raise SeraError(
            f"context length {context_length} is too short: it needs room for start, one token "
            "and end of text (use 17, or 22 for RefCOCOg)"
        )
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        cleaned = clean_expression(text)
        ids = _token_ids(cleaned)
        if not ids:
            raise SeraError(
                f"empty referring expression {text!r}: give the words that describe the object"
            )
        room = context_length - 2
        if len(ids) > room:
            if not _warned_cut:
                _warned_cut = True
                warnings.warn(
                    f"expression cut to the context length {context_length} "
                    f"({len(ids)} tokens, {room} kept): {cleaned[:80]!r}; later cuts are silent",
                    stacklevel=2,
                )
            ids = ids[:room]
        row = [SOT_ID, *ids, EOT_ID]
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
