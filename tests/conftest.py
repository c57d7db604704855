"""Shared fixtures. Data fixtures build their data sets in temporary folders, never in the repo."""

from __future__ import annotations

from pathlib import Path

import pytest


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
    import sera_builtin

    from sera_cli.registry import create_registry
    from sera_cli.run_config import build_configs
    from sera_cli.train import Trainer

    run = tmp_path_factory.mktemp("runs") / "tiny"
    model_cfg, train_cfg = build_configs({"preset": "sera-tiny", "data": str(synth_data_root),
                                          "max_steps": 3, "batch_size": 4})
    registry = create_registry(plugins=[sera_builtin], entry_points=False)
    Trainer(model_cfg, train_cfg, run, synth_data_root, registry=registry).fit()
    return run
