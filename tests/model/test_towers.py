"""The plain backbones compute what transformers' and open_clip's classes compute, on the same
tensors under the same names; a loaded run uses them, so `sera predict` imports neither
library (nor torchvision)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sera_cli.config import ModelConfig, TextConfig, VisionConfig
from sera_cli.model.backbones import ClipText, build_dinov2, num_prefix_tokens, patch_size
from sera_cli.model.sera import build_model
from sera_cli.model.towers import PlainDinov2, PlainTextTransformer
from sera_cli.runs.checkpoints import load_into, load_run

VISION = {"dinov2": VisionConfig(arch="dinov2", hub_id=None, hidden_size=32, layers=2, heads=2,
                                 patch_size=8),
          "dinov2-reg": VisionConfig(arch="dinov2-reg", hub_id=None, hidden_size=32, layers=2,
                                     heads=2, patch_size=8, register_tokens=4)}


def randomized(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random, so that none (layer scales, position tables, biases) can be
    ignored by one side and still agree at its initial value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return module


def last_hidden_state(plain: PlainDinov2, pixels: torch.Tensor) -> torch.Tensor:
    x = plain.embeddings(pixels)
    for layer in plain.encoder.layer:
        x = layer(x)
    return plain.layernorm(x)


@pytest.mark.parametrize("arch", VISION)
@pytest.mark.parametrize("side", [32, 48])  # the table's own grid, and one resized to 6 x 6
def test_plain_dinov2_equals_transformers(arch: str, side: int) -> None:
    cfg = VISION[arch]
    upstream = randomized(build_dinov2(cfg, 32)).eval()
    plain = PlainDinov2(cfg, 32)
    plain.load_state_dict(upstream.state_dict(), strict=True)  # the same names and shapes
    assert num_prefix_tokens(plain) == num_prefix_tokens(upstream) == (5 if arch.endswith("reg")
                                                                         else 1)
    assert patch_size(plain) == patch_size(upstream) == 8
    pixels = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = upstream(pixels).last_hidden_state
        assert torch.allclose(last_hidden_state(plain, pixels), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_plain_text_tower_equals_open_clip(quick_gelu: bool) -> None:
    cfg = TextConfig(width=32, layers=2, heads=2, output_dim=16, quick_gelu=quick_gelu)
    upstream = ClipText(cfg)
    randomized(upstream.tower)
    plain = ClipText(cfg, PlainTextTransformer(cfg))
    plain.tower.load_state_dict(upstream.tower.state_dict(), strict=True)
    ids = torch.tensor([[49406, 320, 1929, 3075, 49407] + [0] * 12,
                        [49406, 518, 736, 49407] + [0] * 13])
    with torch.no_grad():
        for ours, theirs in zip(plain(ids), upstream(ids), strict=True):
            assert torch.allclose(ours.float(), theirs.float(), atol=1e-5, rtol=1e-4)


def test_a_loaded_run_has_plain_backbones_and_the_trained_outputs(saved_run: Path,
                                                                 builtin_registry) -> None:
    model, config = load_run(saved_run, builtin_registry)
    assert isinstance(model.vision.dinov2, PlainDinov2)
    assert isinstance(model.text.tower, PlainTextTransformer)
    upstream = build_model(ModelConfig.from_dict(config["model"]), builtin_registry)
    load_into(upstream, model.state_dict(), saved_run)
    upstream.eval()
    pixels, ids = torch.randn(2, 3, 128, 128), torch.tensor([[49406, 518, 736, 49407] + [0] * 13])
    with torch.no_grad():
        ours, theirs = model(pixels, ids.expand(2, -1)), upstream(pixels, ids.expand(2, -1))
    assert torch.allclose(ours.logits, theirs.logits, atol=1e-4, rtol=1e-4)


def test_a_backbone_given_weights_keeps_the_library_class(tmp_path: Path, tiny_cfg,
                                                          builtin_registry) -> None:
    """Plain backbones only where no pretrained weights are read: the library class loads them."""
    from tiny_weights import EXPECTED_TEXT, clip_model_cfg, save_clip

    save_clip(tmp_path / "clip", clip_model_cfg(False))
    cfg = dataclasses.replace(tiny_cfg, text=dataclasses.replace(EXPECTED_TEXT, pretrained=None,
                                                                   quick_gelu=False))
    model = build_model(cfg, builtin_registry, text_weights=str(tmp_path / "clip"),
                        plain_backbones=True)
    assert type(model.text.tower).__module__.startswith("open_clip.")
    assert isinstance(model.vision.dinov2, PlainDinov2)  # no --vision-weights, no hub id


def test_predict_imports_neither_open_clip_nor_transformers(trained_run: Path,
                                                            tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "img.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    code = ("import sys\n"
            "from sera_cli.cli.main import run\n"
            f"sys.argv = ['sera', 'predict', {str(image)!r}, 'the red square', '--checkpoint', "
            f"{str(trained_run)!r}, '--out', {str(tmp_path / 'mask.png')!r}]\n"
            "try:\n    run()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "heavy = {'open_clip', 'transformers', 'torchvision', 'timm', 'torch._dynamo'}\n"
            "print(sorted(heavy & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "mask.png").is_file()
    assert done.stdout.strip().splitlines()[-1] == "[]"
