"""Shared fixtures. Data fixtures build their data sets in temporary folders, never in the repo,
and every test runs with the built-in plugins only and its own cache folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import blank_png, huge_png
from helpers import builtin_registry as _builtin_registry
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image

from sera_cli.config import ModelConfig, preset
from sera_cli.registry import Registry, default_registry

# Property tests draw the same examples on every run and write no database into the working
# folder: a failure reproduces, and nothing depends on an earlier run.
settings.register_profile("sera", derandomize=True, database=None)
settings.load_profile("sera")
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="sera-hypothesis-"))  # its caches, not in cwd


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sera-cache")


@pytest.fixture(autouse=True)
def pinned_environment(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> Iterator[None]:
    """Built-in plugins only (whatever is installed), no debug, torch's generator seeded, and a
    cache folder of the test session's own, inherited by subprocesses: tests never read or
    write ~/.cache/sera.
    `sera -p` and `--debug` write os.environ; monkeypatch undoes that."""
    monkeypatch.setenv("SERA_LOAD_PLUGINS", "builtin")
    monkeypatch.setenv("SERA_PLUGINS", "")
    monkeypatch.setenv("SERA_DEBUG", "")
    monkeypatch.setenv("SERA_CACHE", str(session_cache))
    torch.manual_seed(0)  # a test's random draws do not depend on which tests ran before it
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()


@pytest.fixture
def builtin_registry() -> Registry:
    return _builtin_registry()


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return preset("sera-tiny")


@pytest.fixture(scope="session")
def synth_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic data set (18 images: 12 train, 2 val, 2 testA, 2 testB), seed 0.

    Session-scoped and read-only: tests that change files must copy it first.
    """
    from sera_cli.data.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, n_images=18, seed=0)
    return root


@pytest.fixture(scope="session")
def gref_synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 18 images as `synth_data_root`, in the gRefCOCO layout with multi-target and
    no-target refs (`sera data synth --generalized`). Session-scoped and read-only."""
    from sera_cli.data.synth import synthesize

    root = tmp_path_factory.mktemp("gsynth")
    synthesize(root, n_images=18, seed=0, generalized=True)
    return root


@pytest.fixture(scope="session")
def trained_run(synth_data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sera-tiny run trained for a few steps on `synth_data_root` (weights, config, latest).

    Session-scoped and read-only; its quality is irrelevant, its files are what tests read.
    """
    from sera_cli.config.layering import build_configs
    from sera_cli.engine.training import Trainer

    run = tmp_path_factory.mktemp("runs") / "tiny"
    model_cfg, train_cfg = build_configs({"preset": "sera-tiny", "data": str(synth_data_root),
                                          "max_steps": 3, "batch_size": 4, "device": "cpu"})
    Trainer(model_cfg, train_cfg, run, synth_data_root, registry=_builtin_registry()).fit()
    return run


@pytest.fixture(scope="session")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained sera-tiny model written by `save_run` (config.json, model.safetensors): the
    files of a run folder at a fraction of `trained_run`'s cost, for tests that read or damage
    them. Session-scoped and read-only: tests that change files must copy it first."""
    from sera_cli.model.sera import build_model
    from sera_cli.runs.checkpoints import save_run

    registry = _builtin_registry()
    torch.manual_seed(0)
    return save_run(tmp_path_factory.mktemp("runs") / "saved",
                    build_model(preset("sera-tiny"), registry), registry)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Image files by kind: "ok", bad ones (missing, directory, text, truncated, empty, bomb,
    huge) and valid but unusual ones (16bit, rgba, cmyk, anim, one). Read-only."""
    d = tmp_path_factory.mktemp("bad-images")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ok.jpg")
    jpeg = (d / "ok.jpg").read_bytes()
    paths = {"ok": d / "ok.jpg", "missing": d / "missing.jpg", "directory": d / "folder.jpg",
             "text": d / "notes.jpg", "truncated": d / "truncated.jpg", "empty": d / "empty.png"}
    paths["directory"].mkdir()
    paths["text"].write_text("this is not an image\n")
    paths["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    paths["empty"].write_bytes(b"")
    # above Pillow's decompression-bomb limit: warning zone (1-2x) and error zone (> 2x)
    paths["bomb"] = blank_png(d / "bomb.png", 10_000, 10_000)
    paths["huge"] = huge_png(d / "huge.png", 60_000, 60_000)
    # valid, if unusual
    Image.fromarray(rng.integers(0, 65536, (30, 50), dtype=np.uint16)).save(d / "16bit.png")
    rgba = rng.integers(0, 256, (33, 44, 4), dtype=np.uint8)
    rgba[:, :22, 3] = 0  # half transparent
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    frames = [Image.fromarray(rng.integers(0, 256, (25, 35, 3), dtype=np.uint8))
              for _ in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "one.png")
    paths.update({"16bit": d / "16bit.png", "rgba": d / "rgba.png", "cmyk": d / "cmyk.jpg",
                  "anim": d / "anim.gif", "one": d / "one.png"})
    assert Image.open(paths["16bit"]).mode.startswith("I;16")
    assert Image.open(paths["cmyk"]).mode == "CMYK"
    assert Image.open(paths["anim"]).n_frames == 3
    return paths
