"""A plugin whose hook or whose expert's forward raises is named, with the plugin.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fails, sera

_HOOK_RAISES = '''
from sera_cli.hookspecs import hookimpl

@hookimpl
def sera_register_experts(register):
    raise RuntimeError("plugin bug")
'''

_FORWARD_RAISES = '''
from torch import nn
from sera_cli.hookspecs import ExpertSpec, hookimpl

class Explode(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        raise RuntimeError("kaboom")

@hookimpl
def sera_register_experts(register):
    register(ExpertSpec("explode", "fusion", Explode, "raises in forward"))
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "bad_hook_plugin.py").write_text(_HOOK_RAISES)
    (folder / "bad_forward_plugin.py").write_text(_FORWARD_RAISES)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_plugin_whose_hook_raises_is_named(plugin_dir: Path, synth_data_root: Path,
                                           tmp_path: Path) -> None:
    listing = sera("-p", "bad_hook_plugin", "experts", "list")
    assert listing.exit_code == 0 and "bad_hook_plugin" in listing.stdout
    assert "plugin bug" in listing.stdout
    fails(sera("-p", "bad_hook_plugin", "train", "--data", synth_data_root, "--max-steps", "1",
               "--batch-size", "4", "--experts", "mystery", "--out", tmp_path / "run"),
          "unknown fusion expert 'mystery'", "plugins that failed to load: bad_hook_plugin")


def test_expert_whose_forward_raises_is_named(plugin_dir: Path, synth_data_root: Path,
                                              tmp_path: Path) -> None:
    fails(sera("-p", "bad_forward_plugin", "train", "--data", synth_data_root, "--max-steps",
               "1", "--batch-size", "4", "--experts", "explode,shape", "--topk", "2",
               "--out", tmp_path / "run"),
          "fusion expert 'explode'", "bad_forward_plugin", "kaboom")
