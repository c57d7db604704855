"""docs/python.md works as written: each titled block runs, in a folder holding a trained run
(`runs/latest`) and `photo.jpg`, as a user's first lines of Python would."""

from __future__ import annotations

import re
import runpy
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"
# A block the tests run is titled: ```python title="predict.py"
BLOCK = re.compile(r'^```python title="([^"]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)


def scripts() -> dict[str, str]:
    return dict(BLOCK.findall(DOC.read_text()))


@pytest.fixture
def folder(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(trained_run, tmp_path / "runs" / "20250101-000000-sera-tiny")
    (tmp_path / "runs" / "latest").symlink_to("20250101-000000-sera-tiny")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)).save(
        tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_first_lines_load_predict_and_save_a_mask(folder: Path) -> None:
    code = scripts()["predict.py"]
    assert len([ln for ln in code.splitlines() if ln.strip()]) == 5  # five lines, as promised
    (folder / "predict.py").write_text(code)
    runpy.run_path(str(folder / "predict.py"), run_name="__main__")
    mask = Image.open(folder / "mask.png")
    assert mask.size == (200, 150)  # the photo's own size
    assert set(np.unique(np.asarray(mask.convert("L")))) <= {0, 255}


def test_the_model_saves_and_loads_back(folder: Path) -> None:
    (folder / "model.py").write_text(scripts()["model.py"])
    runpy.run_path(str(folder / "model.py"), run_name="__main__")  # its assert compares outputs
    assert {p.name for p in (folder / "sera-tiny-synth").iterdir()} == {
        "config.json", "model.safetensors", "README.md"}
