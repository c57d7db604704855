"""The plugin tutorial works as written: its files, copied out of docs/plugins.md into a fresh
folder, are the example package, load with `sera -p`, pass their own tests and train."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sera_builtin

from sera_cli.errors import SeraError
from sera_cli.registry import create_registry
from sera_cli.runs.checkpoints import load_run

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "plugins.md"
# A titled block is a file of the tutorial: ```python title="sera-dilated/sera_dilated/expert.py"
BLOCK = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)
EXPERTS = "spatial,context,boundary,shape,dilated"


def tutorial_files() -> dict[str, str]:
    return dict(BLOCK.findall(DOC.read_text()))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command in the tutorial's folder, the package on the path but not installed."""
    env = {**os.environ, "SERA_LOAD_PLUGINS": "builtin", "PYTHONPATH": str(cwd)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tutorial")
    for name, text in tutorial_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "sera-dilated"


def test_tutorial_files_are_the_example_package() -> None:
    files = tutorial_files()
    example = {str(p.relative_to(REPO / "plugins")): p.read_text()
               for p in sorted((REPO / "plugins" / "sera-dilated").rglob("*"))
               if p.suffix in (".py", ".toml") and "__pycache__" not in p.parts}
    assert sorted(files) == sorted(example), "the tutorial and plugins/sera-dilated differ"
    for name, text in files.items():
        assert text == example[name], f"{name} differs between docs/plugins.md and plugins/"


def test_tutorial_package_is_listed_and_passes_its_own_tests(package: Path) -> None:
    listed = run("-m", "sera_cli", "-p", "sera_dilated", "experts", "list", "--json",
                 cwd=package)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    dilated = [e for e in data["experts"] if e["name"] == "dilated"]
    assert [(e["stage"], e["plugin"]) for e in dilated] == [("fusion", "sera_dilated")]
    assert dilated[0]["params"] > 0 and data["broken"] == []
    tested = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=package)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout


def test_tutorial_package_trains(package: Path, synth_data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("-m", "sera_cli", "-p", "sera_dilated", "train", "--data", str(synth_data_root),
                 "--experts", EXPERTS, "--max-steps", "2", "--batch-size", "4", "--out",
                 str(out), "--json", cwd=package)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["experts"] == EXPERTS.split(",")
    assert config["plugins"]["fusion expert dilated"]["plugin"] == "sera_dilated"
    builtin_only = create_registry(plugins=[sera_builtin], entry_points=False)
    with pytest.raises(SeraError, match="needs fusion expert 'dilated'.*sera -p"):
        load_run(out, registry=builtin_only)  # the run names what to load
