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
