"""The default data set: written once into the cache, reused after, with a progress bar only
while it is being written."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from sera_cli.cli.progress import synthetic_data
from sera_cli.data import default, synth


@pytest.fixture
def small_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache whose first use writes 8 images instead of 900."""
    monkeypatch.setenv(default.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(synth, "synthesize", functools.partial(synth.synthesize, n_images=8))
    return tmp_path / "cache"


def test_first_use_writes_the_set_and_later_uses_reuse_it(small_cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert default.cached_synthetic() is None
    calls: list[tuple[int, int]] = []
    root = default.ensure_synthetic(lambda done, total: calls.append((done, total)))
    assert root == small_cache / default.SYNTH_VERSION
    assert (root / "synth" / "instances.json").is_file()
    assert calls and calls[-1][0] == calls[-1][1]
    assert [p.name for p in small_cache.iterdir()] == [default.SYNTH_VERSION]  # no temp folder

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("synthesized again")

    monkeypatch.setattr(synth, "synthesize", must_not_run)
    assert default.cached_synthetic() == root
    assert default.ensure_synthetic() == root


def test_progress_bar_only_while_writing(small_cache: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    first = synthetic_data()
    assert "synthetic data" in capsys.readouterr().err
    assert synthetic_data() == first
    assert capsys.readouterr().err == ""
