"""The embedded default data set: synthesized once into a cache folder, then reused."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV_CACHE = "SERA_CACHE"
SYNTH_VERSION = "synth-v2-seed0"


def cache_root() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "sera")


def cached_synthetic() -> Path | None:
    """The default data root if a previous run wrote it whole, else None."""
    root = cache_root() / SYNTH_VERSION
    return root if (root / "synth" / "refs(unc).p").is_file() else None


def ensure_synthetic(progress: Callable[[int, int], None] | None = None) -> Path:
    """The default data root; written whole to a temporary folder, then renamed into place, so
    an interrupted first run never leaves half a data set behind."""
    from sera_cli.data.synth import synthesize

    cached = cached_synthetic()
    if cached is not None:
        return cached
    root = cache_root() / SYNTH_VERSION
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{SYNTH_VERSION}."))
    try:
        synthesize(tmp, seed=0, progress=progress)
        if root.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
