"""Shared fixtures. Data fixtures build their data sets in temporary folders, never in the repo,
and every test runs with the built-in plugins only and its own cache folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import builtin_registry as _builtin_registry

from sera_cli.config import ModelConfig, preset
from sera_cli.registry import Registry, default_registry


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sera-cache")


@pytest.fixture(autouse=True)
def pinned_environment(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> Iterator[None]:
    """Built-in plugins only (whatever is installed), no debug, and a cache folder of the test
    session's own, inherited by subprocesses: tests never read or write ~/.cache/sera.
    `sera -p` and `--debug` write os.environ; monkeypatch undoes that."""
    monkeypatch.setenv("SERA_LOAD_PLUGINS", "builtin")
    monkeypatch.setenv("SERA_PLUGINS", "")
    monkeypatch.setenv("SERA_DEBUG", "")
    monkeypatch.setenv("SERA_CACHE", str(session_cache))
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
