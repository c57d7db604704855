"""The Hugging Face conventions on runs: `sera_cli.SeraModel.from_pretrained` (a run folder or a
hub repository) and `save_pretrained`, and a `Predictor` built the same way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_hub import FakeHub
from helpers import cli_env, tiny_inputs
from PIL import Image
from tiny_weights import EXPECTED_VISION, dinov2

import sera_cli
from sera_cli.config import preset
from sera_cli.errors import SeraError
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry
from sera_cli.runs.checkpoints import load_run, save_run


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
                    ).save(path)
    return path


def test_the_root_package_imports_no_torch() -> None:
    """`sera --help` imports sera_cli: the API's names load their modules on first use."""
    code = ("import sys, sera_cli; assert 'torch' not in sys.modules, 'torch imported'; "
            "print(sorted(set(sera_cli.__all__) - set(dir(sera_cli))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=cli_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # every public name is listed before it is loaded
    assert sera_cli.SeraModel.__module__ == "sera_cli.runs.pretrained"


def test_save_pretrained_writes_a_run_that_loads_the_same(trained_run: Path, tmp_path: Path,
                                                         builtin_registry: Registry) -> None:
    model = sera_cli.SeraModel.from_pretrained(trained_run, registry=builtin_registry)
    assert isinstance(model, sera_cli.SeraModel) and model.run_folder == trained_run
    model.save_pretrained(tmp_path / "copy")
    assert {p.name for p in (tmp_path / "copy").iterdir()} == {"config.json",
                                                              "model.safetensors", "README.md"}
    saved = json.loads((tmp_path / "copy" / "config.json").read_text())
    original = json.loads((trained_run / "config.json").read_text())
    assert saved["train"] == original["train"] and saved["model"] == original["model"]
    again = sera_cli.SeraModel.from_pretrained(tmp_path / "copy", registry=builtin_registry)
    reference, _ = load_run(trained_run, builtin_registry)
    inputs = tiny_inputs(model.cfg)
    with torch.no_grad():
        for other in (model, again):
            torch.testing.assert_close(other(*inputs).logits, reference(*inputs).logits,
                                       rtol=0, atol=0)


def test_predictor_from_pretrained_matches_the_run_folders(trained_run: Path,
                                                           photo: Path) -> None:
    expected = sera_cli.Predictor(trained_run)(photo, "the red circle")
    got = sera_cli.Predictor.from_pretrained(trained_run, threshold=0.5)(photo, "the red circle")
    np.testing.assert_array_equal(got.probability, expected.probability)
    np.testing.assert_array_equal(got.mask, expected.probability >= 0.5)


def test_a_run_on_pretrained_backbones_loads_only_on_those(tmp_path: Path,
                                                           builtin_registry: Registry) -> None:
    """A saved run keeps its backbones' architecture: the weights it was trained on load, a
    DINOv2 of another class is refused in one line naming both."""
    dinov2("registers").save_pretrained(tmp_path / "registers")
    dinov2("plain").save_pretrained(tmp_path / "plain")
    cfg = preset("sera-tiny")
    cfg.vision = EXPECTED_VISION  # facebook/dinov2-with-registers-base, tiny
    model = build_model(cfg, builtin_registry, vision_weights=str(tmp_path / "registers"))
    save_run(tmp_path / "run", model.eval(), builtin_registry)
    loaded = sera_cli.SeraModel.from_pretrained(tmp_path / "run", registry=builtin_registry,
                                                vision_weights=str(tmp_path / "registers"))
    inputs = tiny_inputs(cfg)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs).logits, model(*inputs).logits, rtol=0, atol=0)
    with pytest.raises(SeraError, match=f"--vision-weights {tmp_path / 'plain'}: the run "
                                        "expects arch dinov2-reg"):
        sera_cli.SeraModel.from_pretrained(tmp_path / "run", registry=builtin_registry,
                                           vision_weights=str(tmp_path / "plain"))


def test_a_missing_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(SeraError, match="checkpoint folder .*/nope does not exist .*nor is it a "
                                        "hub repository id"):
        sera_cli.SeraModel.from_pretrained(tmp_path / "nope")
    with pytest.raises(SeraError) as caught:
        sera_cli.SeraModel.from_pretrained("user/absent", cache_dir=tmp_path / "cache",
                                           local_files_only=True)
    assert str(caught.value) == (
        f"sera run 'user/absent': not in the Hugging Face cache ({tmp_path / 'cache'}), and "
        "local_files_only is set: fill the cache where the hub can be reached (hf download "
        "user/absent), or pass the path of a run folder")


CHILD = r"""
import sys
import numpy as np
import sera_cli
from sera_cli.errors import SeraError

repo, run, photo = sys.argv[1:]
model = sera_cli.SeraModel.from_pretrained(repo)
print(type(model).__name__, model.run_folder.parent.name)
hub = sera_cli.Predictor.from_pretrained(repo)(photo, "the red circle").probability
local = sera_cli.Predictor(run)(photo, "the red circle").probability
print(np.abs(hub - local).max())
try:
    sera_cli.SeraModel.from_pretrained("user/absent")
except SeraError as exc:
    print(exc)
"""


def test_a_run_on_the_hub_loads_through_the_cache(trained_run: Path, photo: Path,
                                                  tmp_path: Path) -> None:
    with FakeHub() as hub:
        hub.add_folder("user/sera-tiny-synth", trained_run)
        result = subprocess.run(
            [sys.executable, "-c", CHILD, "user/sera-tiny-synth", str(trained_run), str(photo)],
            capture_output=True, text=True, timeout=300,
            env=cli_env(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf")))
    assert result.returncode == 0, result.stderr[-3000:]
    loaded, difference, missing = result.stdout.strip().splitlines()
    assert loaded == "SeraModel snapshots"  # a snapshot folder of the Hugging Face cache
    assert float(difference) == 0.0  # the same prediction as from the run folder itself
    assert any(r.startswith("GET /user/sera-tiny-synth/resolve/main/model.safetensors")
               for r in hub.requests)
    assert missing.startswith(f"sera run 'user/absent': no such repository on the hub at "
                              f"{hub.endpoint}")
